"""Verdicts as people read them: a change and its interval in percent."""

import pandas as pd

from segbench.presentation import verdict_tables


def test_a_percentage_a_person_reads_at_once():
    assert verdict_tables.change_text(1.14, 1.11, 1.16) == "+14 % (11-16 %)"
    assert verdict_tables.change_text(0.88, 0.85, 0.91) == "-12 % (-15 to -9 %)"
    assert verdict_tables.change_text(1.09, 0.79, 1.51) == "+9 % (-21 to +51 %)"
    assert verdict_tables.percent(1.004) == "+0.4 %"


def _inconclusive_cells(refs: list[str] | None) -> pd.DataFrame:
    cell = {"loss": "marginal_crossentropy", "formulation": "blocked", "mode": "xla", "pass": "forward"}
    cell |= {"batch": 16, "height": 512, "width": 512, "classes": 4, "dtype": "float32", "verdict": "inconclusive"}
    table = pd.DataFrame([cell])
    head = {"commit": "a26f0eaac9ffff", "dirty": False, "profile": "default", "source": "segbench ab", "visits": 5}
    table.attrs["runs"] = {"old": head, "new": {**head, "dirty": True}}  # B: the working tree over HEAD
    if refs:
        table.attrs["refs"] = refs
    return table


def test_the_next_ab_command_names_each_side_as_it_was_measured():
    table = _inconclusive_cells(["a26f0eaac9", "WORKTREE"])
    [(command, count)] = verdict_tables.next_commands(table, table)
    assert command.startswith("segbench ab a26f0eaac9 WORKTREE --profile default --visits 10") and count == 1
    advice = "\n".join(verdict_tables.inconclusive_advice(table, 0.1, width=200))
    assert "segbench ab a26f0eaac9 WORKTREE" in advice and "uncommitted changes" not in advice
    # Two separate runs record only their commits: the dirty one's HEAD is named, and a note says so.
    separate = _inconclusive_cells(None)
    [(command, _)] = verdict_tables.next_commands(separate, separate)
    assert command.startswith("segbench ab a26f0eaac9 a26f0eaac9")
    assert "give WORKTREE or a directory" in "\n".join(verdict_tables.inconclusive_advice(separate, 0.1, width=200))


def test_the_next_ab_command_quotes_a_side_for_the_shell():
    import shlex

    table = _inconclusive_cells(["/tmp/my checkout", "WORKTREE"])
    [(command, _)] = verdict_tables.next_commands(table, table)
    assert shlex.split(command)[2:4] == ["/tmp/my checkout", "WORKTREE"]
