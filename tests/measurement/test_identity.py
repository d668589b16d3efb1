"""Machine identity (segbench.measurement.environment.IDENTITY) checked first by compare, merge and report:
runs of different machines get no verdict unless --across-machines, and then say what differs."""

import json

import numpy as np
import pandas as pd
import pytest

from segbench import results
from segbench.cli.parser import main
from segbench.measurement import environment
from segbench.results.merge import merge
from segbench.verdicts.compare import DifferentMachinesError, compare_runs

XEON = {
    "cpu_model": "Intel(R) Xeon(R) Processor (family 6, model 167)",
    "device_name": "Intel(R) Xeon(R) Processor",
    "cpu_flags": "avx avx2 fma avx512f",
    "cpu_count": 2,
    "numpy_version": "2.4.6",
    "tensorflow_version": "2.21.0",
}
EPYC = {
    **XEON,
    "cpu_model": "AMD EPYC (family 25, model 17)",
    "device_name": "AMD EPYC",
    "cpu_flags": "avx avx2 fma avx512f avx512_bf16",
}


def run_rows(machine: dict, run_id: str, median: float = 1e-3, batches=(1, 2, 3), shard=None) -> pd.DataFrame:
    rng = np.random.default_rng(abs(hash(run_id)) % 2**32)
    rows = []
    for batch in batches:
        for mode in ("eager", "xla"):
            samples = list(median * np.exp(0.01 * rng.standard_normal(15)))
            rows.append(
                {
                    "loss": "categorical_crossentropy",
                    "formulation": "fused",
                    "mode": mode,
                    "pass": "forward",
                    "batch": batch,
                    "height": 32,
                    "width": 32,
                    "classes": 4,
                    "dtype": "float32",
                    "status": "ok",
                    "run_id": run_id,
                    "profile": "tiny",
                    "git_commit": "abc",
                    "segbench_version": "0.1.0",
                    "shard": shard,
                    "median_s": float(np.median(samples)),
                    "raw_times_s": json.dumps(samples),
                    "finished_at": "2026-12-01T00:00:00+00:00",
                    **machine,
                }
            )
    return results.conform(pd.DataFrame(rows))


def write_run(directory, frame: pd.DataFrame):
    """A run directory as segbench run leaves it (journal, run.json)."""
    meta = {c: frame[c].iloc[0] for c in ("run_id", "profile", "shard", *environment.IDENTITY) if c in frame}
    meta = {k: (None if pd.isna(v) else getattr(v, "item", lambda v=v: v)()) for k, v in meta.items()}
    with results.ResultWriter(directory, meta) as writer:
        for row in frame.to_dict("records"):
            writer.append({k: (None if pd.isna(v) else v) for k, v in row.items()})
    return directory


def test_codegen_flags_keep_the_instruction_sets_that_change_code():
    flags = ["sse2", "avx", "avx2", "avx512f", "avx512vnni", "avx512_vnni", "amx_tile", "pni", "fma"]
    assert environment.codegen_flags(flags) == "avx avx2 fma avx512f avx512_vnni amx_tile"
    assert environment.codegen_flags([]) is None  # not known: unknown, not "no flags"
    assert "cpu_flags" in environment.cpu()


def test_identity_differences_name_the_columns_and_ignore_unknowns():
    old, new = run_rows(XEON, "a"), run_rows(EPYC, "b")
    differences = dict(environment.identity_differences({"OLD": old, "NEW": new}))
    assert set(differences) == {"cpu_model", "cpu_flags", "device_name"}
    lines = environment.describe_differences(list(differences.items()))
    assert any(line.strip().startswith("CPU model: OLD Intel") and "| NEW AMD EPYC" in line for line in lines)
    # an older run that recorded no flags: unknown, so not different
    older = old.assign(cpu_flags=pd.NA)
    assert environment.identity_differences({"OLD": older, "NEW": run_rows(XEON, "c")}) == []
    assert environment.identity_unknown({"OLD": older, "NEW": run_rows(XEON, "c")}) == ["cpu_flags"]
    # oneDNN on by default and on by the variable run the same kernels; off does not
    by_default, by_variable = old.assign(onednn="on (this build's default)"), old.assign(onednn="on (TF_...=1)")
    assert environment.identity_differences({"A": by_default, "B": by_variable}) == []
    assert [c for c, _ in environment.identity_differences({"A": by_default, "B": old.assign(onednn="off")})] == [
        "onednn"
    ]


def test_asv_results_keep_their_machine_key_in_the_identity():
    one = run_rows(XEON, "a").assign(source="asv", host="box-1")
    other = run_rows(XEON, "b").assign(source="asv", host="box-2")
    assert [c for c, _ in environment.identity_differences({"A": one, "B": other})] == ["asv_machine"]
    # the host name of a segbench run is not an identity (two VMs are both "vm")
    assert environment.identity_differences({"A": one.assign(source="segbench run"), "B": other}) == []


def test_compare_of_two_machines_gives_no_verdict_and_exits_3(tmp_path, capsys):
    old = write_run(tmp_path / "xeon", run_rows(XEON, "a"))
    new = write_run(tmp_path / "epyc", run_rows(EPYC, "b", median=3e-3))  # 3x slower: another machine
    assert main(["compare", str(old), str(new)]) == 3
    captured = capsys.readouterr()
    assert "come from different machines" in captured.out
    assert "CPU model: OLD Intel(R) Xeon(R) Processor" in captured.out and "NEW AMD EPYC" in captured.out
    assert "CPU flags: OLD avx avx2 fma avx512f | NEW avx avx2 fma avx512f avx512_bf16" in captured.out
    assert "1 slower" not in captured.err and "no verdict (exit 3)" in captured.err
    with pytest.raises(DifferentMachinesError, match="different machines"):
        compare_runs(results.load(old), results.load(new))
    # asked for: verdicts, a header block, and each row names what differs
    assert main(["compare", str(old), str(new), "--across-machines", "--format", "csv"]) == 1
    captured = capsys.readouterr()
    assert "ACROSS MACHINES" in captured.err
    table = pd.read_csv(pd.io.common.StringIO(captured.out))
    assert (table["differs"] == "CPU model, CPU flags, device").all() and (table["verdict"] == "slower").all()


def test_runs_of_one_machine_still_compare_and_older_runs_load(tmp_path, capsys):
    old = write_run(tmp_path / "old", run_rows(XEON, "a"))
    same = run_rows(XEON, "b", median=3e-3)
    assert main(["compare", str(old), str(write_run(tmp_path / "new", same))]) == 1  # a real slowdown
    assert "differs" not in capsys.readouterr().out
    # a table of an older segbench, without the new identity columns: loads, compares, notes it
    legacy = tmp_path / "legacy.csv"
    same.drop(columns=["cpu_flags", "gpu_driver"]).assign(schema_version=3).to_csv(legacy, index=False)
    assert main(["compare", str(old), str(legacy)]) == 1
    assert "not recorded by every run" in capsys.readouterr().out


def test_compare_refuses_a_table_with_duplicate_cells(tmp_path, capsys):
    frame = run_rows(XEON, "a")
    doubled = tmp_path / "doubled.csv"
    pd.concat([frame, frame.iloc[:1]]).to_csv(doubled, index=False)
    assert main(["compare", str(doubled)]) == 2
    err = capsys.readouterr().err
    assert "1 cell(s) appear more than once" in err and "categorical_crossentropy/fused/eager" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["compare", str(doubled), str(write_run(tmp_path / "r", frame))]) == 2
    assert "OLD: 1 cell(s) appear more than once" in capsys.readouterr().err


def test_merge_refuses_shards_of_different_machines(tmp_path, capsys):
    one = write_run(tmp_path / "s1", run_rows(XEON, "a", batches=(1,), shard="1/2"))
    two = write_run(tmp_path / "s2", run_rows(EPYC, "b", batches=(2,), shard="2/2"))
    assert main(["merge", str(one), str(two), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "come from different machines" in err and "CPU model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
    merged = merge([one, two], tmp_path / "m", across_machines=True)
    assert set(merged["cpu_model"]) == {XEON["cpu_model"], EPYC["cpu_model"]}  # each row keeps its machine
    # the merged run mixes machines: its one-run summary refuses it too, unless asked
    assert main(["compare", str(tmp_path / "m")]) == 3
    assert "come from different machines" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "m"), "--across-machines"]) == 0
    assert "ACROSS MACHINES" in capsys.readouterr().out


def test_merge_of_an_incomplete_set_of_shards_needs_partial_and_says_so(tmp_path, capsys):
    one = write_run(tmp_path / "s1", run_rows(XEON, "a", batches=(1,), shard="1/3"))
    two = write_run(tmp_path / "s2", run_rows(XEON, "b", batches=(2,), shard="2/3"))
    assert main(["merge", str(one), str(two), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "incomplete set of shards (have 1/3, 2/3; missing 3/3)" in err and "--partial" in err
    assert main(["merge", str(one), str(two), "--out", str(tmp_path / "m"), "--partial"]) == 0
    assert "PARTIAL: shard(s) 3/3" in capsys.readouterr().err
    meta = json.loads((tmp_path / "m" / "run.json").read_text())
    assert meta["partial"] is True and meta["missing_shards"] == ["3/3"]
    assert meta["cpu_model"] == XEON["cpu_model"]  # the machine it was measured on
    assert main(["compare", str(tmp_path / "m")]) == 0
    assert "PARTIAL: shard(s) 3/3" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "m"), "--out", str(tmp_path / "r")]) == 0
    assert "PARTIAL: shard(s) 3/3" in capsys.readouterr().out
    assert "PARTIAL: shard(s) 3/3 missing" in (tmp_path / "r" / "index.html").read_text()


def test_merge_into_a_non_empty_out_is_refused(tmp_path, capsys):
    one = write_run(tmp_path / "s1", run_rows(XEON, "a"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["merge", str(one), "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["merge", str(one), "--out", str(empty)]) == 0
