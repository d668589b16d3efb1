"""Verdicts as people read them: a change and its interval in percent."""

from segbench.presentation import verdict_tables


def test_a_percentage_a_person_reads_at_once():
    assert verdict_tables.change_text(1.14, 1.11, 1.16) == "+14 % (11-16 %)"
    assert verdict_tables.change_text(0.88, 0.85, 0.91) == "-12 % (-15 to -9 %)"
    assert verdict_tables.change_text(1.09, 0.79, 1.51) == "+9 % (-21 to +51 %)"
    assert verdict_tables.percent(1.004) == "+0.4 %"
