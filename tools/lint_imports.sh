#!/bin/sh
# Check the import contracts of pyproject.toml ([tool.importlinter]) with import-linter.
#
# The repository keeps the subpackages (corpus/, judge/, …) beside empathy_study/ and the wheel
# installs them under it; import-linter reads packages from their folders, so this copies the
# sources into a scratch folder laid out as installed and checks that copy.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${BIN:-$repo/.venv/bin}" && pwd)  # absolute: the check runs from a scratch folder
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/empathy_study"
cp "$repo"/empathy_study/*.py "$stage/empathy_study/"
for package in corpus judge annotation causal prompts study; do
    cp -R "$repo/$package" "$stage/empathy_study/$package"
done
cd "$stage"  # import-linter puts the working directory first on the path
PYTHONPATH="$stage" "$bin/lint-imports" --config "$repo/pyproject.toml" --no-cache
