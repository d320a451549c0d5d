"""Django settings for every Label Studio server the toolkit starts (`tools/labelstudio.sh`, the tests).

Label Studio's own settings, plus what a blind study under ethics approval needs and Label Studio's
environment variables cannot say:

- Nothing leaves the machine. Out of the box the back end posts every request — the user's e-mail,
  the request body (annotations) and the response — to Label Studio's telemetry host, reports
  errors to Sentry with personal data, asks PyPI for the latest version at every start, and the
  pages load Google Analytics, a tracking frame and the Sentry browser bundle. All of it is off
  here, set before Label Studio reads it (some of it is read while its settings load).
- One cookie jar per server. Browsers keep cookies per host, not per port, and Label Studio keeps
  the whole login in a signed cookie named `sessionid`: logging in to a second server on the same
  host replaced the first server's cookie with one it cannot verify, and the first server's next
  Submit failed with 401 "Authentication credentials were not provided". Each server's cookies
  carry a name of their own (from its data directory: stable across restarts).
- A sign-up link works once. Label Studio's invite token is one per server and stays valid until
  reset: after the annotator signed up, the same link made further accounts that could read their
  labels. Every sign-up now resets the token.

Label Studio's settings module reads `django.conf.settings` while it is being imported (Sentry and
version checks), so Django is pointed at that module for the moment of the import, as it is when
Label Studio starts without this file.
"""

import hashlib
import os

_OFF = {
    "LABEL_STUDIO_SENTRY_DSN": "",  # back-end error reports (sent with personal data)
    "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",  # the browser's error reports and the Sentry bundle from its CDN
    "LABEL_STUDIO_COLLECT_ANALYTICS": "false",  # request telemetry, Google Analytics, the tracking frame
    "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",  # PyPI at every start
    "LABEL_STUDIO_FEATURE_FLAGS_OFFLINE": "true",  # feature flags from the bundled file, not a service
}
os.environ.update(_OFF)  # the LABEL_STUDIO_ prefix wins over a plain SENTRY_DSN a user may have set

os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
from label_studio.core.settings.label_studio import *  # noqa: E402,F403
from label_studio.core.settings.label_studio import BASE_DATA_DIR  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = __name__

SENTRY_DSN = FRONTEND_SENTRY_DSN = None
COLLECT_ANALYTICS = LATEST_VERSION_CHECK = False

_SERVER = hashlib.sha256(os.path.realpath(BASE_DATA_DIR).encode()).hexdigest()[:12]
SESSION_COOKIE_NAME = f"ls_session_{_SERVER}"
CSRF_COOKIE_NAME = f"ls_csrftoken_{_SERVER}"

SAVE_USER = f"{__name__}.save_user_and_spend_invite"


def save_user_and_spend_invite(request, next_page, user_form):
    """Label Studio's sign-up, then a fresh invite token: the link just used stops working."""
    from organizations.models import Organization
    from users.functions import save_user

    response = save_user(request, next_page, user_form)
    organization = Organization.objects.first()
    if organization is not None:
        organization.reset_token()
    return response
