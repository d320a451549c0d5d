"""`report.html`: one self-contained page (plots embedded as PNG) that renders an EstimateResult.

The report never computes an estimate: it draws what the result holds.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ._config import PRIMARY
from ._estimate import EstimateResult
from ._selection import CONDITIONAL_ON_REPLY

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1050px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: .7em 1em; margin: 1em 0; }
.note { color: #555; font-size: .9em; } img { max-width: 100%; }
"""


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _forest_plot(result: EstimateResult) -> str:
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if np.isfinite(r.estimate) and r.interval_valid and r.validation == "validated"]
    if not rows:
        return "<p class='note'>No row is validated on the bench designs: no forest plot is drawn.</p>"
    labels = [r.label + (" (primary)" if r.label == result.primary else "") for r in rows]
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(rows) + 1))
    y = np.arange(len(rows))[::-1]
    estimates = np.array([r.estimate for r in rows])
    axis.errorbar(estimates, y, xerr=[estimates - [r.ci_low for r in rows], [r.ci_high for r in rows] - estimates],
                  fmt="o", color="#1f4e79", capsize=3)
    axis.axvline(0, color="#999", lw=1)
    axis.set_yticks(y, labels)
    axis.set_xlabel("effect on attachment (points on the 1–7 scale), 95 % CI")
    return _png(figure)


def _love_plot(result: EstimateResult, top: int = 30) -> str:
    import matplotlib.pyplot as plt

    balance = result.balance
    names = balance["covariates"]
    before = np.abs(np.array(balance["before"]))
    order = np.argsort(before)[::-1][:top][::-1]
    figure, axis = plt.subplots(figsize=(8, 0.28 * len(order) + 1.2))
    markers = {"before": ("o", "#c0392b"), "after_greedy": ("s", "#2980b9"),
               "after_optimal": ("^", "#27ae60"), "after_weighting": ("D", "#8e44ad")}
    for key, (marker, colour) in markers.items():
        if key in balance:
            axis.scatter(np.abs(np.array(balance[key]))[order], np.arange(len(order)), marker=marker,
                         color=colour, label=key.replace("_", " "), s=22)
    axis.axvline(0.1, color="#999", ls="--", lw=1)
    axis.set_yticks(np.arange(len(order)), [names[i] for i in order], fontsize=8)
    axis.set_xlabel("|standardised mean difference| (dashed: 0.1)")
    axis.legend(loc="lower right", fontsize=8)
    return _png(figure)


def _overlap_plot(result: EstimateResult) -> str:
    import matplotlib.pyplot as plt

    propensity, treated = result.arrays["propensity"], result.arrays["treated"]
    figure, axis = plt.subplots(figsize=(8, 3))
    bins = np.linspace(0, 1, 41)
    axis.hist(propensity[treated == 1], bins=bins, alpha=0.6, label="treated", color="#c0392b", density=True)
    axis.hist(propensity[treated == 0], bins=bins, alpha=0.6, label="control", color="#2980b9", density=True)
    axis.set_xlabel("cross-fitted propensity P(treated | confounders)")
    axis.legend()
    return _png(figure)


def _cate_plot(result: EstimateResult) -> str:
    import matplotlib.pyplot as plt

    cate = result.arrays["cate"]
    if len(cate) == 0:
        return ""
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.hist(np.clip(cate, -6, 6), bins=60, color="#16a085")
    axis.axvline(0, color="#999", lw=1)
    axis.set_xlim(min(-1.0, cate.min() - 0.2), max(1.0, cate.max() + 0.2))
    axis.set_xlabel("CATE: effect on attachment for each pair (1–7 scale; possible range ±6)")
    return _png(figure)


def _ci(r) -> str:
    if not np.isfinite(r.estimate):
        return "–"
    text = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
    return text if r.interval_valid else text + " (does not cover)"


def _dose_plot(result: EstimateResult) -> str:
    """Partial-residual view of the continuous-treatment fit: attachment and empathy each with the
    confounders partialled out; the line is the LinearDML effect per point."""
    import matplotlib.pyplot as plt

    arrays = result.arrays
    empathy, t_res, y_res, theta = (arrays["dose_empathy"], arrays["dose_t_res"], arrays["dose_y_res"],
                                    float(arrays["dose_theta"][0]))
    levels = np.clip(np.round(empathy), 1, 7)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    xs, ys, ns = [], [], []
    for level in np.unique(levels):
        at = levels == level
        xs.append(t_res[at].mean())
        ys.append(y_res[at].mean())
        ns.append(int(at.sum()))
    axis.scatter(xs, ys, s=[20 + 200 * n / max(ns) for n in ns], color="#1f4e79", zorder=3,
                 label="mean per empathy score (size: pairs)")
    for x, y, level in zip(xs, ys, np.unique(levels)):
        axis.annotate(f"{level:g}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    grid = np.linspace(min(xs), max(xs), 10)
    axis.plot(grid, theta * grid, color="#c0392b", label=f"LinearDML: {theta:+.3f} per point")
    axis.set_xlabel("empathy, confounders partialled out (points)")
    axis.set_ylabel("attachment, confounders partialled out")
    axis.legend(fontsize=8)
    return "<h3>Dose–response: empathy as a continuous treatment</h3>" + _png(figure)


def _forest_dose_plot(result: EstimateResult) -> str:
    """How the per-point effect of the continuous-treatment forest varies over the pairs."""
    import matplotlib.pyplot as plt

    theta = result.arrays["dose_forest_theta"]
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.hist(theta, bins=50, color="#8e44ad")
    axis.axvline(0, color="#999", lw=1)
    axis.axvline(theta.mean(), color="#c0392b", lw=1.5, label=f"mean {theta.mean():+.3f} per point")
    axis.set_xlabel("CausalForestDML: effect of one point of empathy for each pair (attachment points)")
    axis.legend(fontsize=8)
    return "<h3>Per-point effect across pairs (continuous treatment, causal forest)</h3>" + _png(figure)


def _gold_section(result: EstimateResult) -> str:
    gold = result.gold
    if not gold:
        return ""
    parts = ["<h2>Judge error: corrected, uncorrected, human labels only</h2>"]
    if not gold.get("available"):
        return parts[0] + f"<p>{html.escape(str(gold.get('reason')))}</p>"
    rows = []
    for method, what in (("dr", "uncorrected: the judges' labels taken as truth"),
                         ("dr_gold_corrected", "corrected with the audit sample"),
                         ("dr_gold_only", "human labels of the audit sample only")):
        for r in result.rows:
            if r.method == method and r.estimand == "ATE":
                rows.append([what + (" · weighted" if r.weighted else ""), r.estimate, _ci(r),
                             r.ci_high - r.ci_low, r.n_used, r.gold_n, r.effective_gold_n])
    parts.append(_table(["estimate", "ATE", "95 % CI", "width", "n used", "human-labelled pairs",
                         "worth (human-labelled pairs)"], rows))
    sentence = gold.get("summary")
    if sentence:
        parts.append(f"<p><b>{html.escape(sentence, quote=False)}</b></p>")  # text, not an attribute: keep its apostrophes
    design = (gold.get("design") or {}).get("sentence")
    if design:
        parts.append(f"<p>{html.escape(design, quote=False)}</p>")
    parts.append(f"<p class='note'>Audit: {gold['audited']} pairs labelled of {gold['expected_audited']:.0f} expected "
                 f"(response {gold['response_rate']:.0%}; missing labels {html.escape(gold.get('missing_labels', ''))}); "
                 f"{gold['audited_in_arm']} in an arm by their human labels. "
                 f"{html.escape(gold['gold_rule'])}. {html.escape(gold['judge_missing'])}. "
                 f"The prediction reads {html.escape(gold.get('prediction', 'the panel aggregate'))}.</p>")
    return "\n".join(parts)


def render_report(result: EstimateResult, *, title: str = "Effect of empathetic responses on attachment",
                  semisynthetic: bool = False) -> str:
    counts, hte, provenance = result.counts, result.hte, result.provenance
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if semisynthetic:
        parts.append("<div class='banner'><b>Semi-synthetic study.</b> The texts are real conversations; the "
                     "empathy and attachment scores were simulated with a planted effect. These numbers test the "
                     "estimators — they are not findings.</div>")
    if result.primary_missing:
        parts.append(f"<div class='banner'><b>No primary estimate.</b> {PRIMARY}, the estimate checked against "
                     f"human labels, could not be made: {html.escape(result.primary_missing)}. The row marked ★ "
                     "is dr on the judges' labels alone, which no person has checked.</div>")
    if result.warnings:
        parts.append("<div class='banner'><b>Warnings</b><ul>" + "".join(f"<li>{html.escape(w)}</li>"
                                                                          for w in result.warnings) + "</ul></div>")
    parts.append(f"<p><b>Treatment rule.</b> {html.escape(result.rule)}. <b>Outcome:</b> attachment (1–7). "
                 f"<b>Primary estimate (pre-specified):</b> {html.escape(result.primary)}.</p>")
    parts.append("<p><b>Population.</b> Assistant answers the user replied to: every attachment estimate is "
                 "conditional on a reply (see <i>Selection on replying</i>).</p>")
    data_rows = [["pairs in the input", counts["input"]], ["unscored (no panel empathy or attachment)", counts["unscored"]]]
    data_rows += [[f"{k.removesuffix('_partial_panel')}: some judge of the panel failed", v]
                  for k, v in counts.items() if k.endswith("_partial_panel")]
    data_rows += [["excluded by the treatment rule", counts["excluded_by_rule"]], ["treated", counts["treated"]],
                  ["control", counts["control"]],
                  [f"clusters ({counts['cluster_column']})", counts["clusters"]]]
    if "audited" in counts:
        data_rows += [["audited (human labels)", counts["audited"]], ["audited, in an arm by human labels",
                                                                       counts["audited_in_arm"]]]
    parts.append("<h2>Data</h2>" + _table(["rows", "count"], data_rows))
    header = ["method", "estimand", "weighted", "estimate", "SE", "95 % CI", "reference", "n used", "note"]

    def line(r) -> list:
        return [r.method + (" ★" if r.label == result.primary else ""), r.estimand, "yes" if r.weighted else "no",
                r.estimate, r.se, _ci(r), r.reference + (f" ({r.df})" if r.df else ""), r.n_used, r.note]

    validated = [r for r in result.rows if r.validation == "validated"]
    exploratory = [r for r in result.rows if r.validation != "validated"]
    primary = next((r for r in result.rows if r.label == result.primary), None)
    if primary is not None and primary.validation != "validated":
        parts.append(f"<div class='banner'><b>The primary estimate is exploratory:</b> "
                     f"{html.escape(primary.validation_note)}. It is shown with the exploratory rows below.</div>")
    parts.append("<h2>Estimates (validated on the bench designs)</h2>"
                 + (_table(header, [line(r) for r in validated]) if validated else "<p>None.</p>"))
    models = result.nuisance_models
    if models:
        parts.append(f"<p class='note'><b>Nuisance models.</b> Propensity: {html.escape(str(models['propensity']))}; "
                     f"control outcome: {html.escape(str(models['control_outcome']))}; treated outcome: "
                     f"{html.escape(str(models['treated_outcome']))} — {html.escape(models['how'])}.</p>")
    parts.append(_forest_plot(result))
    if exploratory:
        parts.append("<h2>Exploratory rows</h2><p class='note'>Not validated: each row says why (no bench run, "
                     "coverage below 90 % on a bench design, or settings the bench did not use). Read them as "
                     "descriptions, not findings; they are kept out of the forest plot.</p>"
                     + _table(header + ["why exploratory"], [line(r) + [r.validation_note] for r in exploratory]))
    if "dose_theta" in result.arrays:
        parts.append(_dose_plot(result))
    if "dose_forest_theta" in result.arrays:
        parts.append(_forest_dose_plot(result))
    parts.append("<p class='note'>★ the pre-specified primary estimate. SEs are clustered on the user (pairs of one "
                 "user are not independent). Matching SEs sum each matched pair's contribution by the user "
                 "on each side (the matching itself, and for <code>_bc</code> rows the control-outcome model, held "
                 "fixed). Plain matching rows are left out of "
                 "the forest plot: their intervals ignore the imbalance a prompt caliper leaves and do not cover "
                 "(bench/estimator_coverage.py). Weighted rows weight by 1 / inclusion probability.</p>")
    parts.append(_gold_section(result))
    if result.check:
        parts.append(_check_section(result))
    if result.matching:
        match_rows = [[name, m["distance"], m["caliper"], m["pairs"], m["unmatched_treated"], m["mean_distance"]]
                      for name, m in result.matching.items()]
        parts.append("<h2>Matching</h2>" + _table(
            ["method", "distance", "caliper", "pairs", "unmatched treated", "mean distance"], match_rows))
    summary = result.balance["max_abs_smd"]
    parts.append("<h2>Balance</h2>" + _table(["sample", "max |SMD|"], [[k.replace("_", " "), v] for k, v in summary.items()]))
    parts.append(_love_plot(result))
    overlap = result.overlap
    parts.append(f"<h2>Overlap</h2><p>{overlap['clipped']} propensities clipped; {overlap['trimmed']} units "
                 "outside the trimming band. The propensity shown is the one every estimate uses.</p>"
                 + _overlap_plot(result))
    if result.sensitivity:
        parts.append(_sensitivity_section(result.sensitivity))
    if result.refuters:
        parts.append(_refuter_section(result.refuters))
    parts.append(_selection_section({"estimand": CONDITIONAL_ON_REPLY, **result.selection}))
    if hte:
        parts.append(_heterogeneity_section(hte) + _cate_plot(result))
        for name, table in hte["by"].items():
            parts.append(_subgroup_table(name, table))
    parts.append("<h2>Provenance</h2>" + _table(
        ["", "value"], [[k, v] for k, v in _flatten(provenance).items()]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _sensitivity_section(block: dict) -> str:
    parts = ["<h2>Sensitivity to unmeasured confounding</h2>"]
    rows = [[method, v["standardised_effect"], v["risk_ratio"], v["e_value"], v["e_value_ci"]]
            for method, v in block["e_value"].items() if method != "how"]
    if rows:
        parts.append("<h3>E-values</h3>" + _table(["estimate", "effect ÷ SD", "≈ risk ratio", "E-value",
                                                    "E-value of the CI limit"], rows)
                     + f"<p class='note'>{html.escape(block['e_value']['how'])}. An unmeasured confounder associated "
                     "with both treatment and attachment by a risk ratio of the E-value each could explain the "
                     "estimate away; weaker ones could not.</p>")
    ros = block.get("rosenbaum")
    if ros:
        gamma = ("not significant even without hidden bias (Γ = 1)" if ros["gamma_max"] is None
                 else f"significant (p < {ros['level']:g}) up to Γ = {ros['gamma_max']:.2f}")
        parts.append(f"<h3>Rosenbaum bounds ({html.escape(ros['method'])}, {ros['pairs']} pairs)</h3>"
                     + _table(["Γ", "worst-case one-sided p"], [[g, p] for g, p in ros["p_upper"].items()])
                     + f"<p>The matched effect is {gamma}. <span class='note'>{html.escape(ros['how'])}.</span></p>")
    for method, ovb in block.get("omitted_variable", {}).items():
        title = f"<h3>Omitted-variable bounds of {html.escape(method)} · ATE</h3>"
        if ovb.get("robustness_value") is None:
            parts.append(f"{title}<p>Not computed: {html.escape(ovb['reason'])}.</p>")
            continue
        parts.append(title
                     + f"<p>Robustness value {ovb['robustness_value']:.3f} (point estimate reaches 0), "
                     f"{ovb['robustness_value_ci']:.3f} (the 95 % interval reaches 0): a confounder explaining that "
                     "share of both the outcome's residual variation and the treatment's (Riesz representer's) "
                     "variation would be enough.</p>"
                     + _table(["c_y = c_t", "bound low", "bound high", "CI low", "CI high"],
                              [[b["c_y"], b["theta_low"], b["theta_high"], b["ci_low"], b["ci_high"]]
                               for b in ovb["bounds"]])
                     + _contour_plot(ovb) + f"<p class='note'>{html.escape(ovb['how'])}.</p>")
    return "\n".join(parts)


def _contour_plot(ovb: dict) -> str:
    import matplotlib.pyplot as plt

    contour = ovb["contour"]
    cy, ct, bound = np.array(contour["c_y"]), np.array(contour["c_t"]), np.array(contour["bound"])
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    filled = axis.contourf(ct, cy, bound, levels=15, cmap="RdBu")
    figure.colorbar(filled, ax=axis, label=f"{contour['side']} bound of the ATE")
    if bound.min() < 0 < bound.max():
        zero = axis.contour(ct, cy, bound, levels=[0], colors="k", linewidths=1.5)
        axis.clabel(zero, fmt="0")
    rv = ovb["robustness_value"]
    axis.plot([rv], [rv], "k*", ms=10, label=f"robustness value {rv:.3f}")
    axis.set_xlabel("c_t: confounder's share of the treatment's (Riesz) variation")
    axis.set_ylabel("c_y: share of the outcome's residual variation")
    axis.legend(loc="upper right", fontsize=8)
    return _png(figure)


def _refuter_section(refuters: dict) -> str:
    parts = ["<h2>Refuters</h2>"]
    for target, checks in refuters.items():
        lines = "".join(
            f"<li><b>{html.escape(name.replace('_', ' '))}</b> ({html.escape(r.get('kind', ''))}): "
            f"{html.escape(r['verdict'])} — {html.escape(r['summary'])}"
            f"<br><span class='note'>Can detect: {html.escape(r.get('detects', ''))}."
            + (f" {html.escape(r['power'])}" if r.get("power") else "") + "</span></li>"
            for name, r in checks.items())
        parts.append(f"<h3>Of {html.escape(target)}</h3><ul>{lines}</ul>")
    parts.append("<p class='note'>Each refuter re-estimates on altered data with freshly fitted nuisances; the list "
                 "is set by <code>[causal] refuters</code> (the negative control runs whenever the scored pairs carry "
                 "<code>prompt_attachment</code>). A software check cannot detect confounding; a passed test of "
                 "confounding rules out only what it can detect.</p>")
    return "\n".join(parts)


def _selection_section(block: dict) -> str:
    parts = ["<h2>Selection on replying</h2>", f"<p>{html.escape(block['estimand'])}</p>"]
    if not block.get("available"):
        return "\n".join(parts + [f"<p class='note'>Not analysed: {html.escape(str(block.get('reason')))}.</p>"])
    reply, lee, counts = block["reply_effect"], block["lee_bounds"], block["counts"]
    for line in block.get("warnings", []):
        parts.append(f"<p class='banner'>{html.escape(line)}</p>")
    lee_ci = "–" if lee["ci_low"] is None else f"[{lee['ci_low']:.3f}, {lee['ci_high']:.3f}]"
    parts.append(_table(["", "estimate", "95 % CI", "note"], [
        ["effect of empathy on replying (share of answers replied to)", reply["estimate"],
         f"[{reply['ci_low']:.3f}, {reply['ci_high']:.3f}]", reply["verdict"]],
        ["reply rate, treated / control", f"{lee['reply_treated']:.3f} / {lee['reply_control']:.3f}", "–",
         "each arm standardised to all answers"],
        ["Lee bounds: effect on attachment among always-repliers", f"[{lee['lower']:.3f}, {lee['upper']:.3f}]",
         lee_ci, f"{lee['trimmed_arm'] or 'no'} arm trimmed by {lee['trim_share']:.1%}"],
        ["difference among repliers (ignores selection)", lee["replier_difference"], "–", "inverse-propensity weighted"],
    ]))
    parts.append(f"<p class='note'>{counts['in_arm']['replied']} replied and {counts['in_arm']['terminal']} terminal "
                 f"answers in an arm; share of all answers replied to {counts['reply_rate_population']:.1%} (weighted). "
                 f"{html.escape(reply['how'])}. {html.escape(lee['how'])}. {html.escape(lee['assumption'])}. "
                 f"{html.escape(block['weights'])}.</p>")
    return "\n".join(parts)


def _heterogeneity_section(hte: dict) -> str:
    test = hte["calibration_test"]
    sides = [f"{', '.join(hte[f'gates_{side}_zero'])} {side} 0" for side in ("above", "below") if hte[f"gates_{side}_zero"]]
    parts = ["<h2>Heterogeneity</h2>",
             f"<p>On {html.escape(hte['population'])}, from the judges' labels. Honest by user: every CATE the tests "
             f"below use comes from a forest that never saw any pair of the same user (clusters: "
             f"{html.escape(hte['honest_by'])}) — the users are split into halves and each half is predicted by the "
             "forest fitted on the other. (A forest's out-of-bag predictions come from trees that saw the same user's "
             "other pairs, and read differences between users as heterogeneity.)</p>",
             f"<p>Calibration test — {html.escape(hte['calibration_how'])}: β<sub>het</sub> = {test['beta_het']:.2f} "
             f"(SE {test['beta_het_se']:.2f}), one-sided p = {test['p_value']:.3f} over {test['repeats']} splits — "
             f"heterogeneity {'detected' if hte['heterogeneity_detected'] else 'not detected'} "
             f"({html.escape(hte['heterogeneity_detected_by'])}). {html.escape(hte.get('validation', ''))}</p>",
             f"<p>Per-pair CATEs (the histogram): {html.escape(hte['cate_how'])}. Point estimates below 0: "
             f"{hte['share_point_estimate_below_zero']:.1%}, which noise alone produces.</p>"]
    if "forest_sample" in hte:
        parts.append(f"<p>The forests were fitted on {html.escape(hte['forest_sample'])}.</p>")
    if hte["beyond_scale"]:
        parts.append(f"<p class='banner'>{hte['beyond_scale']} CATEs exceed ±6, the widest effect the 1–7 scale "
                     "allows: they are shown clipped.</p>")
    parts.append("<h3>Effect by CATE quintile (GATES)</h3>" + _table(
        ["group", "n", "mean CATE", "effect (mean DR score)", "95 % CI", "95 % CI, all groups at once"],
        [[g["group"], g["n"], g["cate_mean"], g["estimate"], f"[{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]",
          f"[{g['ci_simultaneous'][0]:.3f}, {g['ci_simultaneous'][1]:.3f}]"] for g in hte["gates"]])
        + f"<p class='note'>{html.escape(hte['gates_how'][0].upper() + hte['gates_how'][1:])}. Groups whose "
        f"simultaneous interval lies wholly on one side of 0: {html.escape('; '.join(sides) or 'none')}.</p>")
    return "\n".join(parts)


def _subgroup_table(name: str, table: dict) -> str:
    rows = [[g["group"], g["n"], g["estimate"],
             "–" if g["ci"] is None else f"[{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]",
             "–" if g.get("ci_simultaneous") is None else
             f"[{g['ci_simultaneous'][0]:.3f}, {g['ci_simultaneous'][1]:.3f}]",
             g.get("p_holm"), g.get("note", "")] for g in table["groups"]]
    joint = table["joint_test"]
    sentence = ("" if joint is None else
                f"<p class='note'>Joint test that every {html.escape(name)} has the same effect: χ²({joint['df']}) = "
                f"{joint['statistic']:.2f}, p = {joint['p_value']:.3f}. p-values Holm-adjusted; simultaneous "
                "intervals Bonferroni.</p>")
    return (f"<h3>Effect by {html.escape(name)}</h3>" + _table(
        [name, "n", "estimate", "95 % CI", "simultaneous 95 % CI", "p (Holm)", "note"], rows) + sentence)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _check_section(result: EstimateResult) -> str:
    """`--check`: every checked row on simulated studies built from this one, beside the real estimate."""
    block = result.check
    surfaces, noise, planted = block["surfaces"], block["noise"], block["planted"]
    own = {r.label: r for r in result.rows}
    parts = [f"<h2>Check: the estimators on {block['reps']} simulated studies shaped like this one</h2>",
             "<div class='banner'><b>Simulated data.</b> These studies were simulated from this study's own rows, "
             "covariates, users and sample design, with a planted effect whose truth is known. They say how far each "
             "row's interval can be trusted on data shaped like these; they are not findings.</div>"]
    if block.get("warning"):
        parts.append(f"<p class='banner'>{html.escape(block['warning'])}</p>")
    rows = []
    for r in block["rows"]:
        mine = own.get(r["label"])
        rows.append([r["label"] + (" ★" if r["primary"] else ""),
                     f"{mine.estimate:+.3f} {_ci(mine)}" if mine is not None and np.isfinite(mine.estimate) else "–",
                     r.get("coverage"),
                     "–" if "coverage_ci" not in r else f"[{r['coverage_ci'][0]:.2f}, {r['coverage_ci'][1]:.2f}]",
                     r.get("bias"), r.get("rmse"), r.get("median_width"), r.get("mean_truth"),
                     f"{r['estimated']} of {r['reps']}"])
    parts.append(_table(["row", "your estimate (95 % CI)", "coverage", "95 % CI of coverage (Wilson)", "bias", "RMSE",
                         "median width", "mean truth", "estimated"], rows))
    real, simulated = block["design"]["real"], block["simulated_shape"]
    parts.append("<h3>How the simulated studies were made</h3>" + _table(
        ["", "value"],
        [["surfaces", surfaces["model"]],
         ["propensity: AUC / log loss out of fold (constant)",
          f"{surfaces['propensity']['auc_out_of_fold']:.3f} / {surfaces['propensity']['log_loss_out_of_fold']:.3f} "
          f"({surfaces['propensity']['log_loss_constant']:.3f}); {surfaces['propensity']['rounds']} rounds"],
         ["outcome: R² out of fold", f"{surfaces['outcome']['r2_out_of_fold']:.3f}; "
                                     f"{surfaces['outcome']['rounds']} rounds"],
         ["noise: user SD / pair SD / ICC", f"{noise['user_sd']:.3f} / {noise['pair_sd']:.3f} / {noise['icc']:.3f}"],
         ["planted effect", f"{planted['base']:+.2f}, heterogeneity SD {planted['spread_sd']:.2f} along the effect "
                            "modifiers"],
         ["treated share: real / simulated", f"{real['treated_share']:.3f} / {simulated['treated_share']:.3f}"],
         ["attachment SD: real / simulated", f"{real['attachment_sd']:.3f} / {simulated['attachment_sd']:.3f}"],
         ["raw treated − control difference: real / simulated",
          f"{real['raw_difference']:+.3f} / {simulated['raw_difference']:+.3f}"],
         ["replications failed", len(block["failed"])],
         ["runtime", f"{block['runtime']['wall_seconds']:.0f} s wall, {block['runtime']['cpu_seconds']:.0f} s CPU"]]))
    judge = block["design"].get("judge_errors")
    notes = [noise["how"], planted["how"]]
    if judge:
        confusion = judge["arm_confusion"]
        parts.append("<h3>The judges' arms given the human arm (audited pairs), as simulated</h3>" + _table(
            ["", *next(iter(confusion.values()))], [[gold, *row.values()] for gold, row in confusion.items()]))
        notes += [judge["empathy"], judge["attachment"], block["design"]["audit"]["how"]]
    notes += [f"{name}: not checked — {why}" for name, why in block["not_checked"].items()]
    parts.append("<p class='note'>" + "<br>".join(html.escape(n) for n in notes) + "</p>")
    return "\n".join(parts)
