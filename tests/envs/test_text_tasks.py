"""Text tasks (envs/text): registry, sampling, rewards, demonstrations, JSONL files."""

import json
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import regrl.envs.text as text
from regrl.envs.text import Problem, TaskError, UnknownTaskError, demonstrations, get_task
from tests.scaling import assert_flat

GENERATED = ("arithmetic", "countdown", "word_problems")


def rng(seed=0):
    return np.random.default_rng(seed)


def test_registry_names_and_errors():
    assert text.TASK_NAMES == ("arithmetic", "countdown", "jsonl", "word_problems")
    with pytest.raises(
        UnknownTaskError,
        match=r"'arithmetc'. Did you mean 'arithmetic'\? "
        r"Known: arithmetic, countdown, jsonl",
    ):
        get_task("arithmetc")
    with pytest.raises(TaskError, match="unknown setting 'digit'; did you mean 'digits'"):
        get_task("arithmetic", digit=3)
    with pytest.raises(TaskError, match="needs the setting.*path"):
        get_task("jsonl")


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("arithmetic", {"digits": 0}, "digits must be"),
        ("arithmetic", {"ops": "+/"}, "ops must be"),
        ("arithmetic", {"answer_format": "xml"}, "answer_format must be"),
        ("arithmetic", {"format_penalty": -1}, "format_penalty"),
        ("arithmetic", {"prompt_template": "{instruction}"}, "must contain {question}"),
        ("arithmetic", {"prompt_template": "{question} {foo}"}, "unknown field"),
        ("arithmetic", {"prompt_template": "{question"}, "not a valid format string"),
        ("arithmetic", {"question_template": "{a}{c}"}, "question_template"),
        ("countdown", {"n_numbers": 1}, "n_numbers"),
        ("countdown", {"min_target": 5, "max_target": 1}, "min_target"),
        ("word_problems", {"templates": ["boxes", "nope"]}, "unknown template"),
    ],
)
def test_bad_settings(name, kwargs, message):
    with pytest.raises(TaskError, match=message):
        get_task(name, **kwargs)


@pytest.mark.parametrize("name", GENERATED)
def test_sampling_is_deterministic_per_seed(name):
    task = get_task(name)
    a = [task.sample(rng(7)) for _ in range(3)]
    b = [task.sample(rng(7)) for _ in range(3)]
    assert a == b and [p.meta for p in a] == [p.meta for p in b]
    assert demonstrations(task, 20, 3) == demonstrations(name, 20, 3)
    assert demonstrations(task, 20, 3) != demonstrations(task, 20, 4)
    json.dumps([p.meta for p in a])  # plain values only
    assert pickle.loads(pickle.dumps(a[0])) == a[0]
    assert pickle.loads(pickle.dumps(task)) == task  # tasks travel to Ray actors


def test_sample_needs_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        get_task("arithmetic").sample(0)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(GENERATED), st.integers(0, 2**32), st.sampled_from(["answer", "boxed"]))
def test_demonstrations_earn_full_reward(name, seed, fmt):
    task = get_task(name, answer_format=fmt)
    for row in demonstrations(task, 3, seed):
        problem = Problem(row["prompt"], row["answer"])
        if name != "countdown":  # countdown also needs meta: checked below
            assert task.reward(row["completion"], problem) == 1.0
    p = task.sample(rng(seed))
    assert task.reward(task.demonstration(p), p) == 1.0
    marker = "\\boxed{" if fmt == "boxed" else "Answer:"
    assert marker in task.demonstration(p) and marker.strip("{:") in p.prompt


# ---- arithmetic --------------------------------------------------------------------------


def test_arithmetic_pinned():
    p = get_task("arithmetic").sample(rng(0))
    assert p.prompt == "Compute 86-67. Put the final answer after 'Answer:'."
    assert p.answer == "19" == str(86 - 67)
    task = get_task("arithmetic")
    q = Problem("Compute 37+85. Put the final answer after 'Answer:'.", "122")
    for right in [
        "Answer: 122",
        "37 + 85 = 122",
        "\\boxed{122}",
        "Answer: 122.0",
        "Answer: １２２",
        "Answer: ١٢٢",
        "I added them.\n**Answer:** 122",
        "Answer: 1.22e2",
        "Answer: 122/1",
    ]:
        assert task.reward(right, q) == 1.0, right
    for wrong in [
        "Answer: 121",
        "\\boxed{122} no wait \\boxed{123}",
        "Answer: 12 2",
        "122\nAnswer: 123",
        "Answer: -122",
        "Answer: 122.5",
        "Answer: 1e999999",
    ]:
        assert task.reward(wrong, q) == 0.0, wrong


def test_arithmetic_settings():
    task = get_task("arithmetic", digits=5, ops="*", question_template="What is {a} x {b}?")
    p = task.sample(rng(1))
    a, b = map(int, re.findall(r"\d+", p.prompt)[:2])
    assert len(str(a)) == len(str(b)) == 5 and p.answer == str(a * b)
    assert p.prompt.startswith("What is ") and "after 'Answer:'" in p.prompt
    wide = get_task("arithmetic", digits=40, ops="+").sample(rng(2))
    assert len(str(wide.meta["a"])) == 40 and int(wide.answer) == wide.meta["a"] + wide.meta["b"]
    nonneg = get_task("arithmetic", ops="-", allow_negative=False)
    assert all(int(nonneg.sample(rng(s)).answer) >= 0 for s in range(50))
    mixed = get_task("arithmetic", digits=1, max_digits=3)
    sizes = {len(str(mixed.sample(rng(s)).meta["a"])) for s in range(60)}
    assert sizes == {1, 2, 3}


def test_long_multiplication_demo():
    task = get_task("arithmetic")
    p = Problem("Compute 37*85.", "3145", {"a": 37, "op": "*", "b": 85})
    assert task.demonstration(p) == (
        "37 * 85 = 37 * 80 + 37 * 5 = 2960 + 185 = 3145.\nAnswer: 3145"
    )
    p = Problem("Compute 37*50.", "1850", {"a": 37, "op": "*", "b": 50})
    assert task.demonstration(p) == "37 * 50 = 1850 = 1850.\nAnswer: 1850"


def test_prompt_template_and_boxed_format():
    task = get_task(
        "arithmetic", prompt_template="Q: {question}\n{instruction}\nA:", answer_format="boxed"
    )
    p = task.sample(rng(0))
    assert p.prompt == "Q: Compute 86-67.\nPut the final answer in \\boxed{}.\nA:"
    assert task.demonstration(p).endswith("The final answer is \\boxed{19}.")


def test_format_penalty():
    task = get_task("arithmetic", format_penalty=0.5)
    q = Problem("Compute 1+1.", "2")
    assert task.reward("I do not know", q) == -0.5
    assert task.reward("I do not know", q, format_penalty=0.1) == -0.1
    assert task.reward("Answer: 3", q) == 0.0 and task.reward("Answer: 2", q) == 1.0
    strict = get_task("arithmetic", fallback_last_number=False, format_penalty=1.0)
    assert strict.reward("it is 2", q) == -1.0 and strict.reward("Answer: 2", q) == 1.0
    assert get_task("arithmetic").reward("nothing", q) == 0.0


# ---- countdown -----------------------------------------------------------------------------

CD = Problem(
    "Using the numbers 3, 5, 7, 2, make 56 ...",
    "(3 + 5) * 7",
    {"numbers": [3, 5, 7, 2], "target": 56},
)


@pytest.mark.parametrize(
    "completion, reward",
    [
        ("Answer: (3 + 5) * 7", 1.0),
        ("Answer: 7*(5+3) = 56", 1.0),
        ("\\boxed{(3+5)\\times 7}", 1.0),
        ("so\n(3+5)*7", 1.0),  # fallback: the last line
        ("Answer: (3+5)*7*2/2", 0.0),  # 2 used twice
        ("Answer: (3+5)*7 + 2 - 2", 0.0),
        ("Answer: 8*7", 0.0),  # 8 is not a given number
        ("Answer: 56", 0.0),
        ("Answer: (3+5)*7+2", 0.0),  # wrong value
        ("Answer: 7/(5-5)", 0.0),  # 5 twice anyway; also divides by 0
        ("Answer: 2**5+3*7+3", -0.25),  # powers: not an expression
        ("Answer: eval('56')", -0.25),
        ("I give up", -0.25),
    ],
)
def test_countdown_pinned(completion, reward):
    assert get_task("countdown", format_penalty=0.25).reward(completion, CD) == reward


def test_countdown_exact_fractions_and_use_all():
    p = Problem("", "", {"numbers": [7, 3, 3, 1], "target": 7})
    task = get_task("countdown")
    assert task.reward("Answer: 7/3*3", p) == 1.0
    assert task.reward("Answer: (7/3)*3*1", p) == 1.0
    assert task.reward("Answer: 3/3/0", p) == 0.0
    strict = get_task("countdown", use_all=True)
    assert strict.reward("Answer: 7/3*3", p) == 0.0
    assert strict.reward("Answer: 7/3*3*1", p) == 1.0


def test_countdown_samples_are_solvable_and_in_range():
    task = get_task("countdown", n_numbers=3, max_number=20, min_target=5, max_target=50)
    for seed in range(30):
        p = task.sample(rng(seed))
        nums, target = p.meta["numbers"], p.meta["target"]
        assert len(nums) == 3 and all(1 <= n <= 20 for n in nums)
        assert 5 <= target <= 50 and target not in nums
        assert f"make {target}" in p.prompt and ", ".join(map(str, nums)) in p.prompt
        assert task.reward("Answer: " + p.answer, p) == 1.0


def test_countdown_impossible_range_and_missing_meta():
    with pytest.raises(TaskError, match="cannot be reached"):  # beyond max_number**n_numbers
        get_task("countdown", n_numbers=2, max_number=2, min_target=90)
    # 2 and 2 make 0, 1 or 4: within the bound, yet never 3; sampling gives up
    with pytest.raises(TaskError, match="widen"):
        get_task(
            "countdown", n_numbers=2, min_number=2, max_number=2, min_target=3, max_target=3
        ).sample(rng())
    with pytest.raises(ValueError, match=r"meta\['numbers'\]"):
        get_task("countdown").reward("Answer: 1+2", Problem("p", "1+2"))


# Hostile completions of n and 2n characters (or nesting levels): the reward reads the tail and
# refuses long expressions, so its cost does not grow with n (tests/scaling.py).
COUNTDOWN_HOSTILE = {
    "parentheses": lambda n: "(" * n,
    "digits then a long product": lambda n: "9" * n + "\nAnswer: " + "9*" * 2000 + "9",
    "nested parentheses": lambda n: "Answer: " + "(" * n + "1" + ")" * n,
}


def test_countdown_hostile_completion_is_refused():
    task = get_task("countdown")
    p = task.sample(rng())
    for make in COUNTDOWN_HOSTILE.values():
        assert task.reward(make(5_000_000), p) <= 0.0
    assert task.reward("\\boxed{9**9**9}", p) <= 0.0


@pytest.mark.parametrize("kind", sorted(COUNTDOWN_HOSTILE))
def test_countdown_hostile_completion_cost_does_not_grow(kind):
    task = get_task("countdown")
    p = task.sample(rng())
    make = COUNTDOWN_HOSTILE[kind]
    assert_flat(lambda c: task.reward(c, p), make(500_000), make(1_000_000))


# ---- word problems ---------------------------------------------------------------------------


def test_word_problems_pinned():
    task = get_task("word_problems", templates=["change"])
    p = task.sample(rng(0))
    qty, price, paid = map(
        int,
        re.search(
            r"buys (\d+) notebooks at (\d+) dollars each and pays with (\d+)", p.prompt
        ).groups(),
    )
    assert int(p.answer) == paid - qty * price >= 0
    kinds = {get_task("word_problems").sample(rng(s)).meta["template"] for s in range(80)}
    assert len(kinds) == 8
    q = Problem("Ana has 12 apples ...", "14")
    assert task.reward("12 + 7 = 19. 19 - 5 = 14.\nAnswer: 14", q) == 1.0
    assert task.reward("12 + 7 = 19. 19 - 5 = 14.\nAnswer: 15", q) == 0.0
    assert task.reward("She has 14 apples.", q) == 1.0


# ---- JSONL files -----------------------------------------------------------------------------


def test_jsonl_task(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        {"prompt": "Capital of France?", "answer": "Paris"},
        {"prompt": "Half of one?", "answer": 0.5, "source": "x"},
        {"prompt": "2+2?", "answer": "4", "completion": "2+2 = 4.\nAnswer: 4"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    task = get_task("jsonl", path=str(path))
    assert len(task) == 3
    seen = {task.sample(rng(s)).prompt for s in range(40)}
    assert seen == {r["prompt"] for r in rows}
    assert task.reward("Answer: paris", Problem("", "Paris")) == 1.0
    assert task.reward("Answer: 1/2", Problem("", "0.5")) == 1.0
    assert task.reward("Answer: 0.4", Problem("", "0.5")) == 0.0
    for p in (task.sample(rng(s)) for s in range(10)):
        assert task.reward(task.demonstration(p), p) == 1.0
    demo = [d for d in demonstrations(task, 30, 0) if d["answer"] == "4"][0]
    assert demo["completion"] == "2+2 = 4.\nAnswer: 4"
    with_instr = get_task("jsonl", path=str(path), prompt_template="{question} {instruction}")
    assert with_instr.sample(rng(0)).prompt.endswith("after 'Answer:'.")


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"prompt": "q"}', "missing key 'answer'"),
        ('{"answer": "1"}', "missing key 'prompt'"),
        ('{"prompt": "", "answer": "1"}', "'prompt' must be a non-empty string"),
        ('{"prompt": 3, "answer": "1"}', "'prompt' must be a non-empty string"),
        ('{"prompt": "q", "answer": true}', "'answer' must be a string or a number"),
        ('{"prompt": "q", "answer": [1]}', "'answer' must be a string or a number"),
        ('{"prompt": "q", "answer": NaN}', "finite"),
        ('{"prompt": "q", "answer": " "}', "'answer' is empty"),
        ('{"prompt": "q", "answer": "1", "completion": 5}', "'completion' must be a string"),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "answer": "1"}\n\n' + line + "\n")
    with pytest.raises(TaskError, match=re.escape(f"{path}:3: ") + ".*" + re.escape(message)):
        get_task("jsonl", path=str(path))


def test_jsonl_missing_or_empty_file(tmp_path):
    for error in (FileNotFoundError, TaskError):
        with pytest.raises(error, match="no such JSONL file"):
            get_task("jsonl", path=str(tmp_path / "none.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n \n")
    with pytest.raises(TaskError, match="no problems"):
        get_task("jsonl", path=str(tmp_path / "empty.jsonl"))


HOSTILE = {
    "groups": "1" + ",111" * 1200 + "1",
    "dots": "9." * 3000,
    "exps": "1e" * 3000,
    "markers": "Answer:" * 700,
    "slashes": "1/" * 3000,
    "boxes": "\\boxed{" * 700,
    "braces": "{}" * 3000,
    "digits": "9" * 5000,
    "arabic": "٣," * 3000,
    "newlines": "\n" * 5000,
    "signs": "-" * 5000 + "1",
    "nul": "\x00" * 5000,
}


def _verify_all(completions, tasks, problems):
    for task, p in zip(tasks, problems):
        for c in completions:
            assert task.reward(c, p) in (0.0, 1.0)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_patterns_cost_all_tasks_the_same_at_any_length(kind):
    """10 MB of each pattern is verified; 1 MB and 2 MB of it cost the same."""

    def completions(size):
        body = HOSTILE[kind] * (size // len(HOSTILE[kind]))
        return [body, "Answer: " + body, "\\boxed{" + body + "}"]

    tasks = [get_task(name) for name in GENERATED]
    problems = [t.sample(rng(1)) for t in tasks]
    _verify_all(completions(10_000_000), tasks, problems)
    assert_flat(
        lambda c: _verify_all(c, tasks, problems), completions(1_000_000), completions(2_000_000)
    )
