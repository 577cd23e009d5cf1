"""Bad input (issue 15, issue 12 §3): every config kind is read by one YAML reader that refuses
binary files and alias bombs, reads numbers as users write them, refuses non-finite and absurd
values and unsafe run names; the CLI answers with exactly one ``error:`` line and status 2,
and a bug in regrl ends its traceback with one line saying so (status 1)."""

import argparse
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from regrl.trainers import cli
from regrl.trainers.checks import MAX_REPR, require_run_name, short_repr
from regrl.trainers.config import ConfigError, load_config, load_yaml_text, read_yaml

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "configs" / "cartpole_ppo.yaml"


def _loaders():
    from regrl.trainers.offline import load_offline_config
    from regrl.trainers.rlvr.config import load as load_rlvr
    from regrl.trainers.traffic.pretrain import load_pretrain_config

    return {
        "rl": load_config,
        "rlvr": load_rlvr,
        "sft": load_rlvr,
        "offline": load_offline_config,
        "planner": load_pretrain_config,
    }


# the smallest valid file of each kind, and where its learning rate / a batch size live
KINDS = {
    "rl": ({}, "training.lr", "training.train_batch_size"),
    "rlvr": ({"kind": "rlvr"}, "training.lr", "training.micro_batch_size"),
    "sft": ({"kind": "sft"}, "training.lr", "training.batch_size"),
    "offline": (
        {"kind": "offline", "data": {"path": "d.npz"}},
        "training.lr",
        "training.batch_size",
    ),
    "planner": ({"kind": "planner"}, "lr", "batch_size"),
}


def load_kind(tmp_path, kind, sets=(), text=None):
    """Write the minimal ``kind`` file (or ``text``) and load it with ``--set`` ``sets``."""
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(KINDS[kind][0]))
    return _loaders()[kind](path, list(sets))


def get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def regrl(*args, cwd=ROOT):
    """The real entry point in a subprocess: (status, stderr)."""
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    proc = subprocess.run(
        [sys.executable, "-m", "regrl.trainers.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stderr


def assert_one_error_line(status, err, pattern=""):
    assert status == cli.EXIT_BAD_INPUT, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and pattern in lines[0], err


def in_process(args, capsys):
    """``regrl ARGS`` in this process: (status, stderr)."""
    status = cli.main([str(a) for a in args])
    return status, capsys.readouterr().err


def alias_bomb(levels=9):
    """A "billion laughs" value: 9 levels of 9 aliases (~600 bytes, 9^9 leaves)."""
    expr = "&a0 [" + ",".join(["lol"] * 9) + "]"
    for i in range(1, levels + 1):
        expr = f"&a{i} [{expr}," + ",".join([f"*a{i - 1}"] * 8) + "]"
    return expr


BOMBS = {
    "training.lr": "training:\n  lr: {}\n",
    "env.kwargs": "env:\n  name: CartPole-v1\n  kwargs: {{k: {}}}\n",
    "eval.kwargs": "eval:\n  kwargs: {{k: {}}}\n",
}


@pytest.fixture
def visits(monkeypatch):
    """Counts the nodes the alias measurement visits (``_measure`` calls, recursive ones
    included), in whichever module defines the YAML reader: an operation count, not seconds."""
    module = sys.modules[load_yaml_text.__module__]
    measure, count = module._measure, [0]

    def counted(*args, **kwargs):
        count[0] += 1
        return measure(*args, **kwargs)

    monkeypatch.setattr(module, "_measure", counted)
    return count


# ------------------------------------------------------------------- one reader, all kinds
@pytest.mark.parametrize("where", sorted(BOMBS))
def test_alias_bomb_is_refused_quickly_under_any_key(tmp_path, where, visits):
    """~10^9 values once expanded, refused after at most one visit per character of the file
    (a measurement that follows every alias visits MAX_YAML_NODES nodes first)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS[where].format(alias_bomb()))
    assert path.stat().st_size < 700
    with pytest.raises(ConfigError, match="aliases are expanded"):
        read_yaml(path)
    assert 0 < visits[0] <= path.stat().st_size


def test_alias_bomb_via_cli_subprocess(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS["env.kwargs"].format(alias_bomb()))
    status, err = regrl("validate", path)  # the subprocess's own timeout guards a hang
    assert_one_error_line(status, err, "aliases are expanded")
    assert len(err) < 1000


def _doubling_aliases(levels):
    return "a0: &a0 [x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, levels)
    )


def test_measuring_is_linear_in_the_file(visits):
    """Aliases that nest n levels deep, each used twice: 2^n values, refused after a number
    of visits that grows like the file (n), not like the expansion (2^n)."""
    counts = []
    for levels in (25, 50):
        doc = _doubling_aliases(levels)
        visits[0] = 0
        with pytest.raises(ConfigError, match="aliases are expanded"):
            load_yaml_text(doc, "doc")
        assert 0 < visits[0] <= len(doc) // 4
        counts.append(visits[0])
    assert counts[1] <= 2 * counts[0] + 8


def test_small_aliases_still_work_and_recursion_and_depth_are_refused():
    data = load_yaml_text("base: &b {lr: 1e-3}\ncopy: *b\n", "doc")
    assert data["copy"] == {"lr": 0.001}
    with pytest.raises(ConfigError, match="deeper than"):
        load_yaml_text("a: &a [*a]\n", "doc")  # a recursive alias never ends
    with pytest.raises(ConfigError, match="deeper than"):
        load_yaml_text("[" * 10_000 + "]" * 10_000, "doc")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_reads_through_the_safe_reader(tmp_path, kind):
    path = tmp_path / f"{kind}.yaml"
    head = f"kind: {kind}\n" if kind != "rl" else ""
    path.write_text(head + "junk: " + alias_bomb() + "\n")
    with pytest.raises(ConfigError, match="aliases are expanded"):
        _loaders()[kind](path, [])


@pytest.mark.parametrize(
    "raw, pattern",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "binary file"),
        (b"training:\n  lr: 0.1\nname: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 29)"),
    ],
)
def test_binary_and_non_utf8_files_are_refused(tmp_path, raw, pattern):
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=re.escape(pattern)):
        read_yaml(path)


def test_non_utf8_config_via_cli_subprocess(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    assert_one_error_line(*regrl("validate", path), "not UTF-8 text")


def test_utf8_with_bom_and_unicode_names_are_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: café_run\n".encode("utf-8"))
    assert load_config(path).name == "café_run"


def test_resume_reads_the_saved_config_through_the_safe_reader(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\njunk: " + alias_bomb() + "\n")
    assert_one_error_line(*regrl("train", "--resume", run), "aliases are expanded")


# ---------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 0.001),
        ("5E-4", 0.0005),
        (".5", 0.5),
        ("1_000", 1000),
        ("-2.5e+3", -2500.0),
        ("1e3", 1000.0),
        ("+1e5", 100000.0),
        ("1.5e3", 1500.0),
        ("1_0.5e1", 105.0),
        ("2", 2),
        ("0.1", 0.1),
        ("1e", "1e"),
        ("e5", "e5"),
        ("1.2.3", "1.2.3"),
        ("1e-3x", "1e-3x"),
    ],
)
def test_numbers_parse_as_written(text, value):
    parsed = load_yaml_text(f"v: {text}\n", "doc")["v"]
    assert parsed == value and type(parsed) is type(value)


def test_set_reads_numbers_as_written(tmp_path):
    cfg = load_config(
        CARTPOLE,
        [
            "training.lr=1e-3",
            "training.iterations=1e3",
            "training.train_batch_size=1_000",
            "training.grad_clip=.5",
        ],
    )
    assert cfg.training.lr == 0.001 and cfg.training.grad_clip == 0.5
    assert cfg.training.iterations == 1000 and type(cfg.training.iterations) is int
    assert cfg.training.train_batch_size == 1000


def test_set_lr_1e_3_via_cli_subprocess():
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regrl.trainers.cli",
            "validate",
            str(CARTPOLE),
            "--set",
            "training.lr=1e-3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.001" in proc.stdout


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("bad", [".inf", "-.inf", ".nan", ".NaN"])
def test_non_finite_floats_are_refused_in_every_kind(tmp_path, kind, bad):
    lr_key = KINDS[kind][1]
    with pytest.raises(ConfigError, match=rf"{lr_key}: must be a finite number"):
        load_kind(tmp_path, kind, [f"{lr_key}={bad}"])


def test_non_finite_term_params_and_resources_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"terms\[0\]\.clip_high: must be a finite"):
        load_config(CARTPOLE, ["objective.terms=[{name: policy, clip_high: .inf}]"])
    with pytest.raises(ConfigError, match=r"env_runner_resources\.slot: must be a finite"):
        load_config(CARTPOLE, ["resources.env_runner_resources={slot: .nan}"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_absurd_sizes_are_refused_in_every_kind(tmp_path, kind):
    batch_key = KINDS[kind][2]
    with pytest.raises(ConfigError, match=batch_key.split(".")[-1]):
        load_kind(tmp_path, kind, [f"{batch_key}=1e20"])
    with pytest.raises(ConfigError, match=batch_key.split(".")[-1]):
        load_kind(tmp_path, kind, [f"{batch_key}=100_000_000"])  # fits int32, not memory
    assert get(load_kind(tmp_path, kind, [f"{batch_key}=1e3"]), batch_key) == 1000
    with pytest.raises(ConfigError, match="expected int, got float 2.5"):
        load_kind(tmp_path, kind, [f"{batch_key}=2.5"])


@pytest.mark.parametrize(
    "kind, sets, pattern",
    [
        ("rl", ["training.iterations=1e20"], r"training\.iterations: must be at most"),
        ("rl", ["resources.num_env_runners=1e6"], "num_env_runners must be in"),
        ("rl", ["model.hidden=[64, 1e9]"], "hidden sizes must be in"),
        ("rl", ["seed=-1e30"], "seed: must be at most"),
        ("rl", ["training.lr=1" + "0" * 400], "training.lr: expected a float, got an integer"),
        ("rlvr", ["rollout.max_new_tokens=1e9"], "rollout.max_new_tokens must be in"),
        (
            "rlvr",
            ["rollout.prompts_per_step=100_000", "rollout.group_size=1000"],
            "prompts_per_step x group_size must be in",
        ),
        ("rlvr", ["resources.num_rollout_actors=1e5"], "num_rollout_actors must be in"),
        ("sft", ["data.n=1e9"], "data.n must be in"),
        ("offline", ["model.hidden=[1e6]"], "model.hidden must be a non-empty list"),
        ("offline", ["resources.num_workers=1e6"], "num_workers must be in"),
        ("planner", ["dim=1e7"], "dim must be in"),
    ],
)
def test_other_absurd_values_name_the_key(tmp_path, kind, sets, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_kind(tmp_path, kind, sets)


# -------------------------------------------------------------------- --set and kind errors
@pytest.mark.parametrize(
    "override, pattern",
    [
        ("training.lr.x.y=1", "training.lr holds float"),
        ("seed.a.0=1", "seed holds int"),
        ("=1", "empty part"),
        ("a..b=1", "empty part"),
        ("objective.terms.²=1", "is not an index"),
        ("training.lr", "expected key.path=value"),
        ("training.lr=[1, 2", "not valid YAML"),
        ("env.kwargs." + ".".join(["a"] * 200) + "=1", "more than 64 parts"),
    ],
)
def test_bad_set_gives_one_error_line(capsys, override, pattern):
    assert_one_error_line(*in_process(["validate", CARTPOLE, "--set", override], capsys), pattern)


def test_bad_set_via_cli_subprocess():
    assert_one_error_line(
        *regrl("validate", CARTPOLE, "--set", "training.lr.x.y=1"), "training.lr holds float"
    )


@pytest.mark.parametrize("text", ["kind: [rlvr]\n", "kind: {a: 1}\n", "kind: 3\n"])
def test_non_string_kind_is_an_error_line(tmp_path, capsys, text):
    path = tmp_path / "k.yaml"
    path.write_text(text)
    assert_one_error_line(*in_process(["validate", path], capsys), "kind must be a name")
    assert_one_error_line(*in_process(["train", path], capsys), "kind must be a name")


def test_non_string_kind_via_set(capsys):
    rlvr = ROOT / "configs" / "rlvr_tiny_grpo.yaml"
    assert_one_error_line(
        *in_process(["validate", rlvr, "--set", "kind=[rlvr]"], capsys),
        "kind must be 'rlvr' or 'sft'",
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_runs_root_that_is_a_file_is_refused_at_validation(tmp_path, kind):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for root in (afile, afile / "below"):
        with pytest.raises(ConfigError, match="is a file, not a directory"):
            load_kind(tmp_path, kind, [f"runs_root={root}"])


def test_runs_root_that_is_a_file_at_run_start(tmp_path):
    from regrl.trainers.harness import new_run_dir

    afile = tmp_path / "afile"
    afile.write_text("x")  # appeared after validation
    with pytest.raises(ConfigError, match="cannot create the run directory"):
        new_run_dir(SimpleNamespace(runs_root=str(afile), name="exp"))


# ------------------------------------------------------------------------------- run names
BAD_NAMES = [
    "",
    ".",
    "..",
    "a/b",
    "../x",
    "a\\b",
    "a\x00b",
    "tab\there",
    "new\nline",
    "-rf",
    "x" * 101,
    "\x7f",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_unsafe_run_names_are_refused(name):
    with pytest.raises(ValueError, match="a run name is one directory name"):
        require_run_name(name)


@pytest.mark.parametrize("name", ["cartpole_ppo", "run-1", "a.b", "x" * 100, "café", "..."])
def test_safe_run_names_are_accepted(name):
    require_run_name(name)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_checks_its_name(tmp_path, kind):
    for name in ("..", "a/b", "-x"):
        with pytest.raises(ConfigError, match="a run name is one directory name"):
            load_kind(tmp_path, kind, [f"name={name}"])


def test_dot_dot_name_via_cli_subprocess(tmp_path):
    assert_one_error_line(
        *regrl("train", CARTPOLE, "--set", "name=..", "--set", f"runs_root={tmp_path}"),
        "is '.' or '..'",
    )
    assert not any(tmp_path.parent.glob("2*"))  # nothing created beside runs_root


def test_new_run_dir_refuses_a_bad_name_even_unvalidated(tmp_path):
    from regrl.trainers.harness import new_run_dir

    with pytest.raises(ConfigError, match="one directory name"):
        new_run_dir(SimpleNamespace(runs_root=str(tmp_path / "runs"), name=".."))
    assert not any(tmp_path.iterdir())


def test_racing_runs_get_distinct_directories(tmp_path, monkeypatch):
    """Threads that start in the same (patched) second each get their own directory."""
    from regrl.trainers import harness

    monkeypatch.setattr(harness.time, "strftime", lambda fmt: "20260101-000000")
    cfg = SimpleNamespace(runs_root=str(tmp_path), name="race")
    n_threads, per_thread = 8, 10
    barrier, made, errors = threading.Barrier(n_threads), [], []

    def worker():
        barrier.wait()
        for _ in range(per_thread):
            try:
                made.append(harness.new_run_dir(cfg))
            except Exception as exc:  # noqa: BLE001 - the test reports any failure
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(made)) == n_threads * per_thread


def test_run_dir_taken_between_check_and_create(tmp_path, monkeypatch):
    """Deterministic form of the race: another process creates the directory right after
    we looked; we must move on to the next suffix, not fail or share it."""
    from regrl.trainers import harness

    monkeypatch.setattr(harness.time, "strftime", lambda fmt: "20260101-000000")
    cfg = SimpleNamespace(runs_root=str(tmp_path), name="race")
    (tmp_path / "race" / "20260101-000000").mkdir(parents=True)
    real_exists = Path.exists
    monkeypatch.setattr(
        Path, "exists", lambda self: False if self.name.startswith("2026") else real_exists(self)
    )
    assert harness.new_run_dir(cfg).name == "20260101-000000-1"


# ------------------------------------------------------------------ messages and main()
def test_error_messages_never_print_a_whole_value(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({"training": {"lr": "x" * 20_000}, "k" * 20_000: 1}))
    status, err = in_process(["validate", path], capsys)
    assert status == cli.EXIT_BAD_INPUT and len(err) < 2 * MAX_REPR + 200
    path.write_text(
        yaml.safe_dump({"env": {"name": "CartPole-v1", "kwargs": {"a": list(range(5_000))}}})
    )
    status, err = in_process(["validate", path], capsys)
    assert_one_error_line(status, err, "cannot create environment")
    assert len(err) <= cli.MAX_ERROR_CHARS + 10


def test_short_repr_bounds_huge_and_nested_values():
    calls = []

    class Item:
        def __repr__(self):
            calls.append(1)
            return "item"

    huge = [[Item()] * 1000] * 1000  # a full repr would visit 10^6 items
    text = short_repr(huge)
    assert len(text) <= MAX_REPR and text.startswith("[[item") and len(calls) < 100
    assert len(short_repr("y" * 10_000)) <= MAX_REPR
    assert short_repr("lr") == "'lr'"


def _fake_parser(handler):
    ns = argparse.Namespace(command="fake", handler=handler)
    return lambda: SimpleNamespace(parse_args=lambda argv: ns)


def _raise(exc):
    def handler(args):
        raise exc

    return handler


def test_internal_error_keeps_traceback_and_ends_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_parser", _fake_parser(_raise(RuntimeError("boom"))))
    status, err = in_process([], capsys)
    assert status == 1 and "Traceback" in err
    assert err.rstrip().splitlines()[-1] == (
        "error: internal error in regrl (this is a bug, please report it): RuntimeError: boom"
    )
    assert sum("error:" in line for line in err.splitlines()) == 1


@pytest.mark.parametrize(
    "exc, pattern",
    [
        (PermissionError(13, "Permission denied", "/root/x"), "error: /root/x: Permission denied"),
        (IsADirectoryError(21, "Is a directory", "runs"), "error: runs: Is a directory"),
    ],
)
def test_os_errors_on_user_paths_are_one_line(monkeypatch, capsys, exc, pattern):
    monkeypatch.setattr(cli, "_parser", _fake_parser(_raise(exc)))
    status, err = in_process([], capsys)
    assert_one_error_line(status, err)
    assert err.strip() == pattern


def test_keyboard_interrupt_is_130(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_parser", _fake_parser(_raise(KeyboardInterrupt())))
    assert in_process([], capsys)[0] == 130


def test_multiline_messages_become_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_parser", _fake_parser(_raise(ConfigError("first\nsecond\n  third"))))
    status, err = in_process([], capsys)
    assert_one_error_line(status, err)
    assert err == "error: first second third\n"


# ------------------------------------------------------------------------------- fuzzing
def _fuzz_strategies():
    from hypothesis import strategies as st

    words = [
        "name",
        "seed",
        "runs_root",
        "kind",
        "env",
        "kwargs",
        "training",
        "lr",
        "iterations",
        "train_batch_size",
        "model",
        "hidden",
        "objective",
        "terms",
        "advantages",
        "resources",
        "eval",
        "checkpoint",
        "every",
        "plugins",
        "data",
        "path",
        "rollout",
        "task",
        "0",
        "1",
    ]
    values = [
        "rlvr",
        "sft",
        "offline",
        "planner",
        "CartPole-v1",
        "policy",
        "1e-3",
        ".inf",
        ".nan",
        "..",
        "-x",
        "1e20",
        "[1,",
        "{a: *b}",
        "&a [*a]",
        "!!python/object:os.system",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
    ]
    weird = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    keys = st.sampled_from(words) | weird
    scalars = (
        st.none() | st.booleans() | st.integers() | st.floats() | weird | st.sampled_from(values)
    )
    trees = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=16,
    )
    shared = st.lists(scalars, min_size=1, max_size=3) | st.dictionaries(keys, scalars, max_size=3)
    snippets = st.sampled_from(
        [
            "",
            "",
            "&a [*a]",
            "*undefined",
            "<<: *b",
            "{",
            "\x00",
            "\t",
            "!!binary AAAA",
            "? [1]\n: 2",
            "\ufeff",
            "---\n---",
        ]
    )
    docs = st.tuples(
        st.dictionaries(keys, trees, max_size=5),
        shared,
        st.lists(keys, max_size=3),
        snippets,
        st.integers(0, 400),
    )
    key_paths = st.lists(keys, min_size=1, max_size=4).map(".".join)
    sets = st.lists(
        weird | st.builds("{}={}".format, key_paths, weird | st.sampled_from(values)), max_size=3
    )
    return st.one_of(docs, st.binary(max_size=200)), sets


def _doc_bytes(doc):
    """A fuzz document: a YAML dump whose shared parts become anchors/aliases, with a
    hostile snippet spliced in, or plain random bytes."""
    if isinstance(doc, bytes):
        return doc
    data, shared, alias_keys, snippet, at = doc
    for key in alias_keys:  # the same object under several keys: safe_dump writes &id/*id
        data[key] = shared
    text = yaml.safe_dump(data, allow_unicode=True)
    at = min(at, len(text))
    return (text[:at] + snippet + text[at:]).encode("utf-8", "surrogatepass")


def _validate(path, sets):
    """``regrl validate`` in-process: (status, stderr). A hang is stopped by pytest-timeout;
    the cost of hostile YAML is bounded by operation counts in the alias tests above."""
    import contextlib
    import io

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = cli.main(["validate", str(path), *[a for s in sets for a in ("--set", s)]])
        except SystemExit as exc:  # argparse usage errors
            status = exc.code
    return status, err.getvalue()


def test_fuzz_validate_random_documents(tmp_path):
    from hypothesis import HealthCheck, given, settings

    docs, _ = _fuzz_strategies()
    path = tmp_path / "fuzz.yaml"

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(doc=docs)
    def check(doc):
        path.write_bytes(_doc_bytes(doc))
        status, err = _validate(path, [])
        assert status in (0, 2) and "Traceback" not in err, err
        assert status == 0 or sum("error:" in line for line in err.splitlines()) == 1, err

    check()


def test_fuzz_set_overrides_on_a_real_config(tmp_path):
    from hypothesis import HealthCheck, given, settings

    _, sets = _fuzz_strategies()

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(overrides=sets)
    def check(overrides):
        status, err = _validate(CARTPOLE, overrides)
        assert status in (0, 2) and "Traceback" not in err, err

    check()


def test_fuzz_examples_via_cli_subprocess(tmp_path):
    """Two hostile inputs through the real entry point (fixed seed)."""
    import random

    rng = random.Random(15)
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    assert_one_error_line(*regrl("validate", path))
    junk = "".join(rng.choice("ab.=[]{}&*!:0e-") for _ in range(40))
    status, err = regrl("validate", CARTPOLE, "--set", junk, "--set", "a..b=&a [*a]")
    assert_one_error_line(status, err)
