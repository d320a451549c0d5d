"""Overview: judge (and panel) × rubric version against the blind gold labels."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from empathy_study.study import calibrate
from empathy_study.study.tui.screens.base import StudyScreen
from empathy_study.study.tui.widgets import confusion_text, fill_table, interval, number, short_version

MATRIX_COLUMNS = ["  rater", *(f" {c}" for c in ("rubric", "α [95% CI]", "κ", "MAE", "bias", "n", "gap [95% CI]"))]


class IntervalsReady(Message):
    def __init__(self, key: tuple, overview: calibrate.Overview) -> None:
        super().__init__()
        self.key, self.overview = key, overview


class OverviewScreen(StudyScreen):
    """Judge (and panel) × rubric version against the blind gold labels of one construct."""

    BINDINGS = [Binding("v", "label_version", "Label version")]
    label_version: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        yield DataTable(id="matrix", cursor_type="row", cell_padding=0)
        yield Static(id="detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        fill_table(self.query_one("#matrix", DataTable), MATRIX_COLUMNS, [])

    def action_label_version(self) -> None:
        versions = self.data.label_versions(self.app.construct)
        if len(versions) < 2:
            self.notify("the gold labels of this construct were all made under one rubric version")
            return
        current = self.label_version or versions[0]
        self.label_version = versions[(versions.index(current) + 1) % len(versions)]
        self.refresh_view()

    def key(self, intervals: bool) -> tuple:
        return (self.app.generation, self.app.construct, self.label_version, intervals)

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.label_version not in self.data.label_versions(self.app.construct):
            self.label_version = None
        cached = self.app.overviews.get(self.key(True)) or self.app.overviews.get(self.key(False))
        if cached is None:
            cached = calibrate.overview(self.data, self.app.construct, self.label_version)
            self.app.overviews[self.key(False)] = cached
        self.show(cached, self.key(True) in self.app.overviews)
        if self.key(True) not in self.app.overviews and self.app.boot:
            self.intervals(self.key(True))

    @work(thread=True, exclusive=True, group="intervals")
    def intervals(self, key: tuple) -> None:
        _, construct, label_version, _ = key
        found = calibrate.overview(self.data, construct, label_version, boot=self.app.boot)
        self.post_message(IntervalsReady(key, found))

    def on_intervals_ready(self, message: IntervalsReady) -> None:
        self.app.overviews[message.key] = message.overview
        if message.key == self.key(True):
            self.show(message.overview, True)

    def show(self, overview: calibrate.Overview, intervals: bool) -> None:
        gold, ceiling = overview.gold, overview.ceiling
        if not gold.units:
            root = self.data.study.root
            self.query_one("#context", Static).update(Text(
                f"{overview.construct.upper()} · no blind gold labels yet: `empathy annotate push {root}`, label the "
                f"audit sample in Label Studio, then `empathy annotate pull {root}`"))
            fill_table(self.query_one("#matrix", DataTable), MATRIX_COLUMNS, [])
            self.rows = {}
            self.query_one("#detail", Static).update("")
            return
        lines = [f"{overview.construct.upper()} · gold: {len(gold.units)} pairs, {len(gold.annotators)} annotators, "
                 f"labels under rubric {short_version(gold.label_version)}"
                 + (f" (+{sum(gold.other_versions.values())} labels under other versions, not pooled)"
                    if gold.other_versions else ""),
                 f"human ceiling α {interval(ceiling['alpha'], ceiling['ci'])} on {ceiling['n']} pairs with ≥ 2 "
                 f"annotators" + ("" if intervals or not self.app.boot else " · intervals: computing…")]
        locked = (self.data.lock or {}).get("constructs", {}).get(overview.construct)
        if locked:
            after = locked["evidence"]["after_held_out"].get("panel", {})
            lines.append(f"LOCKED (*): {'+'.join(j['name'] for j in locked['judges'])}, {locked['aggregate']['how']}"
                         f", held-out α {interval(after.get('alpha'), after.get('ci'))}")
        else:
            lines.append("not locked: export writes the raw panel mean (press 4 to calibrate and lock)")
        self.query_one("#context", Static).update(Text("\n".join(lines)))
        table = self.query_one("#matrix", DataTable)
        cursor = table.cursor_row
        rows = []
        for row in overview.rows:
            f = row.figures
            name = ("* " if row.locked else "  ") + row.rater
            version = short_version(row.version) + (" ◂" if row.current else "")
            gap = interval(row.gap["gap"], row.gap["gap_ci"]) if row.gap else "…" if self.app.boot else "—"
            cells = (version, interval(f["alpha"], f["ci"]), number(f["kappa"]), number(f["mae"]),
                     number(f["bias"], signed=True), str(f["n"]), gap)
            rows.append((name[:14], *(f" {c}" for c in cells)))
        fill_table(table, MATRIX_COLUMNS, rows, [f"{r.rater}@{r.version}" for r in overview.rows])
        self.rows = {f"{r.rater}@{r.version}": r for r in overview.rows}
        if overview.rows:
            table.move_cursor(row=min(cursor, len(overview.rows) - 1))
            self.show_detail(overview.rows[table.cursor_row])
        else:
            self.query_one("#detail", Static).update("no judge has scored a gold pair of this construct yet")

    @on(DataTable.RowHighlighted, "#matrix")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = getattr(self, "rows", {}).get(event.row_key.value)
        if row is not None:
            self.show_detail(row)

    def show_detail(self, row: calibrate.OverviewRow) -> None:
        f = row.figures
        facts = Text(
            f"{row.rater} @ {short_version(row.version)}{' (current rubric)' if row.current else ''}\n"
            f"failed {number(None if row.fail_rate is None else 100 * row.fail_rate, 1)} % of items\n"
            f"${number(row.cost_per_1k, 4)} per 1k pairs\n"
            f"scored {row.pairs_scored} of {len(self.data.sample)} sample pairs\n"
            f"arm ≠ gold: {number(None if f['flip'] is None else 100 * f['flip'], 1)} % of gold\n"
            f"rule: treated ≥ {self.data.rule[0]:g}, control ≤ {self.data.rule[1]:g}\n"
            + ("unrounded panel mean" if row.rater == calibrate.PANEL else "α, κ: pairwise with annotators"))
        grid = Table.grid(padding=(0, 3))
        grid.add_row(facts, confusion_text(f["confusion"], "treatment class"))
        self.query_one("#detail", Static).update(grid)
