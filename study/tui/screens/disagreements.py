"""Disagreements: the gold pairs where the judges and people differ most."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from empathy_study.study import calibrate
from empathy_study.study.tui.screens.base import StudyScreen
from empathy_study.study.tui.widgets import fill_table, number, pair_view, short_version

# The pair column holds the whole pair id (sorting reads it), shown cut to 12 characters.
PAIR_COLUMNS = [("pair", "pair", 12), "model", "topic", "gold", "score", "Δ", "ann"]

SORTS = ("|Δ|", "Δ", "gold", "score", "pair")


class DisagreementsScreen(StudyScreen):
    """Gold pairs where the judges and people differ most: dialogue, every rating, rationales, the rubric."""

    BINDINGS = [
        Binding("j", "rater", "Judge"),
        Binding("v", "version", "Rubric"),
        Binding("s", "sort", "Sort"),
        Binding("m", "model", "Model"),
        Binding("t", "topic", "Topic"),
    ]
    rater: str = calibrate.PANEL
    version: str | None = None
    sort: str = SORTS[0]
    model: str | None = None
    topic: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        yield DataTable(id="pairs", cursor_type="row")
        with VerticalScroll(id="pair-detail"):
            yield Static(id="pair-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        fill_table(self.query_one("#pairs", DataTable), PAIR_COLUMNS, [])

    def raters(self) -> list[str]:
        return ([calibrate.PANEL] if len(self.data.judges) > 1 else []) + self.data.judges

    def versions(self) -> list[str]:
        pairs = self.data.rater_versions(self.app.construct)
        names = self.data.judges if self.rater == calibrate.PANEL else [self.rater]
        found = [v for _, v in pairs if all((n, v) in pairs for n in names)]
        return list(dict.fromkeys(found)) or [self.data.versions[self.app.construct]]

    def cycle(self, attribute: str, options: list) -> None:
        current = getattr(self, attribute)
        setattr(self, attribute, options[(options.index(current) + 1) % len(options)] if current in options else options[0])
        self.show_rows()

    def action_rater(self) -> None:
        self.version = None  # before the rows are redrawn: the next rater's own rubric versions apply
        self.cycle("rater", self.raters())

    def action_version(self) -> None:
        self.cycle("version", self.versions())

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.apply_sort()

    def action_model(self) -> None:
        self.cycle("model", [None, *sorted(self.frame["model"].unique())])

    def action_topic(self) -> None:
        self.cycle("topic", [None, *sorted(self.frame["topic"].unique())])

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.rater not in self.raters():
            self.rater = self.raters()[0]
        self.show_rows()

    def show_rows(self) -> None:
        """Recompute (a new construct, rater or rubric) or refilter, then redraw the rows."""
        construct = self.app.construct
        if self.version not in self.versions():
            self.version = self.versions()[0]
        key = (self.app.generation, construct, self.rater, self.version)
        if getattr(self, "frame_key", None) != key:  # a filter reuses the computed frame
            self.frame, self.frame_key = calibrate.disagreements(self.data, construct, self.rater, self.version), key
        shown = self.frame
        if self.model is not None:
            shown = shown[shown["model"] == self.model]
        if self.topic is not None:
            shown = shown[shown["topic"] == self.topic]
        self.shown_count = len(shown)
        table = self.query_one("#pairs", DataTable)
        fill_table(table, PAIR_COLUMNS, [(r.pair_id, str(r.model)[:14], str(r.topic)[:14], number(r.gold, 1),
                                          number(r.score, 1), number(r.difference, 1, signed=True), str(r.annotators))
                                         for r in shown.itertuples()])
        self.apply_sort()

    def sort_key(self):
        """The current sort as a key on a row's pair id: unscored pairs last, ties by pair id."""
        frame = self.frame.set_index("pair_id")
        far = float("inf")
        if self.sort == "pair":
            return lambda pair_id: pair_id
        values = {"|Δ|": -frame["difference"].abs(), "Δ": frame["difference"], "gold": -frame["gold"],
                  "score": -frame["score"]}[self.sort].fillna(far).to_dict()
        return lambda pair_id: (values[pair_id], pair_id)

    def apply_sort(self) -> None:
        """Re-sort in place (DataTable's own sort: the rows are not rebuilt)."""
        table = self.query_one("#pairs", DataTable)
        table.sort("pair", key=self.sort_key())
        self.pair_ids = [table.get_row_at(i)[0] for i in range(table.row_count)]
        self.query_one("#context", Static).update(Text(
            f"{self.app.construct.upper()} · {self.rater} @ {short_version(self.version)} · sort {self.sort} · "
            f"model {self.model or 'all'} · topic {self.topic or 'all'} · {self.shown_count} of {len(self.frame)} "
            "gold pairs"))
        if self.pair_ids:
            table.move_cursor(row=0)
            self.show_pair(self.pair_ids[0])
        else:
            self.query_one("#pair-text", Static).update("no gold pair matches")

    @on(DataTable.RowHighlighted, "#pairs")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(getattr(self, "pair_ids", [])):
            self.show_pair(self.pair_ids[event.cursor_row])

    def show_pair(self, pair_id: str) -> None:
        detail = calibrate.pair_detail(self.data, self.app.construct, pair_id, self.rater, self.version)
        self.query_one("#pair-text", Static).update(pair_view(detail, self.data.rubrics[self.app.construct]))
