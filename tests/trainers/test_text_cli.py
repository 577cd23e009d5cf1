"""``regrl text demos|sample``: deterministic SFT files, one error line on bad input."""

import json

import pytest

from regrl.envs.text import Problem, get_task
from regrl.trainers.cli import EXIT_BAD_INPUT, main


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demos_writes_deterministic_jsonl(tmp_path, capsys):
    out_a, out_b = tmp_path / "data" / "a.jsonl", tmp_path / "b.jsonl"
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "arithmetic",
                "--n",
                "50",
                "--seed",
                "0",
                "--out",
                str(out_a),
            ]
        )
        == 0
    )
    assert "wrote 50 arithmetic demonstrations" in capsys.readouterr().out
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "arithmetic",
                "--n",
                "50",
                "--seed",
                "0",
                "--out",
                str(out_b),
            ]
        )
        == 0
    )
    assert out_a.read_bytes() == out_b.read_bytes()
    rows = _rows(out_a)
    assert len(rows) == 50 and all(set(r) == {"prompt", "completion", "answer"} for r in rows)
    assert rows[0] == {
        "prompt": "Compute 86-67. Put the final answer after 'Answer:'.",
        "completion": "86 - 67 = 19.\nAnswer: 19",
        "answer": "19",
    }
    task = get_task("arithmetic")
    assert all(task.reward(r["completion"], Problem(r["prompt"], r["answer"])) == 1.0 for r in rows)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["a.jsonl"]  # no temporary file


def test_demos_with_task_settings(tmp_path):
    out = tmp_path / "cd.jsonl"
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "countdown",
                "--n",
                "5",
                "--seed",
                "3",
                "--kw",
                "n_numbers=3",
                "--kw",
                "answer_format=boxed",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = _rows(out)
    assert all("\\boxed{" in r["completion"] and r["prompt"].count(",") >= 2 for r in rows)
    out2 = tmp_path / "wp.jsonl"
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "word_problems",
                "--n",
                "4",
                "--kw",
                'templates=["boxes"]',
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    assert all("boxes" in r["prompt"] for r in _rows(out2))


def test_demos_from_user_jsonl(tmp_path):
    src = tmp_path / "src.jsonl"
    src.write_text('{"prompt": "2+2?", "answer": 4}\n')
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "jsonl",
                "--kw",
                f"path={src}",
                "--n",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert _rows(out)[0] == {"prompt": "2+2?", "completion": "Answer: 4", "answer": "4"}


def test_sample_prints_problems(capsys):
    assert main(["text", "sample", "--task", "word_problems", "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("prompt: ") == 2 and "Answer: " in out


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["text", "sample", "--task", "countdon"], "Did you mean 'countdown'"),
        (["text", "sample", "--task", "arithmetic", "--kw", "digits=0"], "digits must be"),
        (["text", "sample", "--task", "arithmetic", "--kw", "digit=3"], "did you mean 'digits'"),
        (["text", "sample", "--task", "arithmetic", "--kw", "digits"], "expected KEY=VALUE"),
        (["text", "sample", "--task", "arithmetic", "--n", "-1"], "--n must be >= 0"),
        (
            ["text", "sample", "--task", "jsonl", "--kw", "path=/nonexistent.jsonl"],
            "no such JSONL file",
        ),
    ],
)
def test_bad_input_exits_2(capsys, args, pattern):
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err and "Traceback" not in err


def test_bad_jsonl_line_is_one_error_line(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "ok", "answer": 1}\n{"prompt": "q"}\n')
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "jsonl",
                "--kw",
                f"path={src}",
                "--out",
                str(tmp_path / "o.jsonl"),
            ]
        )
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert err.strip() == f"error: {src}:2: missing key 'answer' (keys: prompt)"
