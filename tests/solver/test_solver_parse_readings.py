"""The parser reads problems as a reader means them, and says so when it is not literal (issue 11).

Each reading is checked through ``solve`` on a real problem, against a value
worked out by hand; the "read as" step must appear exactly when the text was
not read literally.
"""

from __future__ import annotations

import pytest
import sympy  # type: ignore[import-untyped]  # no py.typed in sympy 1.14

from jobtrail.errors import ProblemParseError
from jobtrail.solver import solve
from jobtrail.solver.parse import read_expression
from jobtrail.solver.text import normalize

x, y = sympy.symbols("x y")
_LOCALS = {"x": x, "y": y, "E": sympy.E, "I": sympy.I, "pi": sympy.pi}


def value_of(text: str) -> sympy.Expr:
    """Read an answer text (SymPy ``str`` syntax) back; tests are trusted code."""
    return sympy.sympify(text.removesuffix(" + C"), locals=_LOCALS, rational=True)


def same(answer_text: str, expected: sympy.Expr) -> bool:
    return bool(sympy.simplify(value_of(answer_text) - expected) == 0)


def read_as(problem: str) -> list[str]:
    return [step for step in solve(problem).steps if step.startswith("read as ")]


# A function written without parentheses takes the term that follows.
FUNCTION_ARGUMENTS = [
    ("d/dx sin 2x", 2 * sympy.cos(2 * x), "read as sin(2*x)"),
    ("d/dx cos 3x", -3 * sympy.sin(3 * x), "read as cos(3*x)"),
    ("d/dx 3 sin 2x", 6 * sympy.cos(2 * x), "read as 3*sin(2*x)"),
    ("d/dx ln 2x", 1 / x, "read as ln(2*x)"),
    ("d/dx sin x cos x", sympy.cos(2 * x), "read as sin(x)*cos(x)"),
    ("d/dx sin^2 x", sympy.sin(2 * x), "read as sin(x)^2"),
    ("d/dx sin x^2", 2 * x * sympy.cos(x**2), "read as sin(x^2)"),
    ("d/dx sin 2x + 1", 2 * sympy.cos(2 * x), "read as sin(2*x) + 1"),
    ("d/dx e^x sin x", sympy.exp(x) * (sympy.sin(x) + sympy.cos(x)), "read as e^x*sin(x)"),
    ("d/dx sin x e^x", sympy.exp(x) * (sympy.sin(x) + sympy.cos(x)), "read as sin(x)*e^x"),
    ("d/dx log x / x", (1 - sympy.log(x)) / x**2, "read as ln(x)/x"),
    ("d/dx sqrt 2x", 1 / sympy.sqrt(2 * x), "read as sqrt(2*x)"),
    ("d/dx sin2x", 2 * sympy.cos(2 * x), "read as sin(2*x)"),
    ("d/dx sinx", sympy.cos(x), "read as sin(x)"),
    ("d/dx lnx", 1 / x, "read as ln(x)"),
    ("d/dx sin cos x", -sympy.cos(sympy.cos(x)) * sympy.sin(x), "read as sin(cos(x))"),
    ("d/dx cos^-1 x", -1 / sympy.sqrt(1 - x**2), "read as acos(x)"),
    ("d/dx cosine x", -sympy.sin(x), "read as cos(x)"),  # a spelled-out name, never cos(i*n*e)
    ("d/dx sin 2(x + 1)", 2 * sympy.cos(2 * x + 2), "read as sin(2*(x + 1))"),
]


@pytest.mark.parametrize(("problem", "derivative", "step"), FUNCTION_ARGUMENTS)
def test_function_without_parentheses_takes_the_following_term(
    problem: str, derivative: sympy.Expr, step: str
) -> None:
    # When
    answer = solve(problem)
    # Then the derivative is the one of the reading a reader means, and the steps say it
    assert same(answer.text, derivative), answer.text
    assert answer.steps[0] == step


@pytest.mark.parametrize(
    ("problem", "value", "step"),
    [
        ("sin pi/6", sympy.Rational(1, 2), "read as sin(pi/6)"),  # unspaced /number stays inside
        ("cos 2pi/3", sympy.Rational(-1, 2), "read as cos(2*pi/3)"),
        ("sin pi / 6", sympy.Integer(0), "read as sin(pi)/6"),  # a spaced / ends the argument
        ("lim x->0 sin x/x", sympy.Integer(1), "read as sin(x)/x"),  # so does /x
        ("lim x->0 sin 2x / x", sympy.Integer(2), "read as sin(2*x)/x"),
        ("sin 30°", sympy.Rational(1, 2), "read as sin(30*pi/180)"),
        ("cos 60 degrees", sympy.Rational(1, 2), "read as cos(60*pi/180)"),
    ],
)
def test_where_a_bare_argument_ends(problem: str, value: sympy.Expr, step: str) -> None:
    answer = solve(problem)
    assert same(answer.text, value), answer.text
    assert read_as(problem) == [step]


@pytest.mark.parametrize(
    ("problem", "step"),
    [
        ("solve x = 1.5e-3", "read as x = 1.5*10^(-3)"),
        ("solve x = 2.5E-3 * 0.6", "read as x = 2.5*10^(-3)*0.6"),
        ("solve 1000x = 1.5", None),  # a plain decimal is read literally: no step
    ],
)
def test_equation_with_decimals_answers_in_exact_decimals(problem: str, step: str | None) -> None:
    # When
    answer = solve(problem)
    # Then the root is exactly 0.0015, written as the decimal the problem used
    assert answer.text == "x = 0.0015"
    assert sympy.Rational(answer.text.removeprefix("x = ")) == sympy.Rational(3, 2000)
    assert read_as(problem) == ([step] if step else [])


@pytest.mark.parametrize(
    ("problem", "value"),
    [
        ("6.02e+23 * 2", sympy.Integer(1204) * 10**21),
        ("6.02e+23 / 6.02E23", sympy.Integer(1)),
        ("1e3 + 1", sympy.Integer(1001)),
        ("1.5e3 - 500", sympy.Integer(1000)),
        ("2e-3 + 1", sympy.Rational(1002, 1000)),  # 2e-3 is 0.002, not 2e - 3
    ],
)
def test_scientific_notation_is_a_number_never_euler_e(problem: str, value: sympy.Expr) -> None:
    answer = solve(problem)
    assert value_of(answer.text) == value
    assert not value_of(answer.text).has(sympy.E)
    assert read_as(problem) and "10^" in read_as(problem)[0]


def test_scientific_literal_next_to_a_variable_is_its_coefficient() -> None:
    answer = solve("d/dx 1.5e3x")
    assert answer.text == "1500"
    assert answer.steps[0] == "read as 1.5*10^3*x"


@pytest.mark.parametrize(
    ("problem", "expected", "steps"),
    [
        ("d/dx e^x", sympy.exp(x), []),
        ("d/dx exp(x)", sympy.exp(x), []),
        ("d/dx e^-x", -sympy.exp(-x), []),
        ("d/dx 2e^x", 2 * sympy.exp(x), []),
        ("d/dx 2e x", 2 * sympy.E, ["read as 2*e*x"]),  # a number next to e is a product
        ("2 e-3 - 2e", sympy.Integer(-3), ["read as 2*e - 3 - 2*e"]),  # spaced: not 2*10^-3
        ("d/dx xe^x", (x + 1) * sympy.exp(x), ["read as x*e^x"]),  # letters split
    ],
)
def test_euler_e_stays_euler_e(problem: str, expected: sympy.Expr, steps: list[str]) -> None:
    answer = solve(problem)
    assert same(answer.text, expected), answer.text
    assert read_as(problem) == steps


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        ("solve x^2 - 5x + 6 = 0", "x = 2, x = 3"),
        ("d/dx x^3 sin(x)", "x**3*cos(x) + 3*x**2*sin(x)"),
        ("integrate x e^x dx from 0 to 1", "1"),
        ("lim x->0 sin(x)/x", "1"),
        ("2x + y = 5, x - y = 1", "x = 2, y = 1"),
        ("-x^2 + 2^10 x", "x*(1024 - x)"),
        ("evaluate 3 × 4 ÷ 2", "6"),  # rewritten, but reads exactly as written: 3*4/2
    ],
)
def test_literal_text_gets_no_read_as_step(problem: str, text: str) -> None:
    answer = solve(problem)
    assert answer.text == text
    assert read_as(problem) == []


@pytest.mark.parametrize(
    ("problem", "text", "step"),
    [
        # implicit multiplication after a division: (1/2)*x, as in SymPy; shown
        ("simplify 1/2x", "x/2", "read as (1/2)*x"),
        # a power tower is read from the right
        ("2^3^2", "512", "read as 2^(3^2)"),
        # a power binds before a division: x^1/2 is (x^1)/2, shown when it may mean x^(1/2)
        ("simplify x^1/2", "x/2", "read as (x^1)/2"),
        ("simplify x^3/2", "x**3/2", "read as (x^3)/2"),
        ("simplify x^2/2 + e^x/2", "x**2/2 + exp(x)/2", None),
        # a power binds before the implicit product: e^2x is e^2*x; shown
        ("simplify e^2x", "x*exp(2)", "read as e^2*x"),
        # log is the natural logarithm; a base is written log_b or log10(...)
        ("log(e^2)", "2", "read as ln(e^2)"),
        ("log_2 8", "3", "read as log_2(8)"),
        ("log10(1000)", "3", "read as log_10(1000)"),
        ("log(8, 2)", "3", "read as log_2(8)"),
        ("ln(e)", "1", None),
        # repeated factorial is a factorial of a factorial, not a double factorial
        ("3!!", "720", "read as (3!)!"),
        # unicode rewritten: the reading is shown when it differs from the text
        ("solve x² − 5x + 6 = 0", "x = 2, x = 3", "read as x^2 - 5*x + 6 = 0"),
        ("√2 × √8", "4", "read as sqrt(2)*sqrt(8)"),
        # words
        ("solve x squared - 4 = 0", "x = -2, x = 2", "read as x^2 - 4 = 0"),
        ("2 plus 3 times 4", "14", "read as 2 + 3*4"),
        # | | is the absolute value
        ("solve |x - 1| = 2", "x = -1, x = 3", None),
        ("pix / pi", "x", "read as pi*x/pi"),
        ("x ** 2 - x^2", "0", "read as x^2 - x^2"),
    ],
)
def test_each_normalization_is_one_read_as_step(problem: str, text: str, step: str | None) -> None:
    # When
    answer = solve(problem)
    # Then the value follows the documented reading and the first step names it
    assert answer.text == text
    assert read_as(problem) == ([step] if step else [])
    if step:
        assert answer.steps[0] == step


def test_one_read_as_step_per_expression_and_no_repeats() -> None:
    answer = solve("integrate sin 2x dx from 0 to pi/4")
    assert answer.text == "1/2"
    assert read_as("integrate sin 2x dx from 0 to pi/4") == ["read as sin(2*x)"]
    system = solve("2x + 3y = 7, x - y = 1e0")
    assert system.text == "x = 2, y = 1"
    assert [s for s in system.steps if s.startswith("read as")] == ["read as x - y = 1*10^0"]


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("5% of 20", "'%' is not supported: write p/100 for p percent"),
        ("sin [x]", "use ( ) for grouping"),
        ("|x - 1", "unbalanced '|'"),
        ("log_", "unexpected end of expression"),
        ("x_1 + 1", "could not parse near '_1 + 1'"),
        ("1e99999", "number too large"),
        ("solve x = 1,5", "write a decimal with a point (1.5)"),
        ("1,000 + 1", "write a decimal with a point (1.5) and a number without separators"),
    ],
)
def test_unreadable_notation_fails_with_one_clear_line(problem: str, message: str) -> None:
    with pytest.raises(ProblemParseError if "large" not in message else Exception) as caught:
        solve(problem)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "problem",
    [
        "sin 2x", "3 sin 2x cos 3x", "sin^2 x + cos^2 x", "sin x^2 y", "log x / x", "sqrt 2x",
        "1.5e-3 x", "6.02e+23", "2e", "e^-x", "1/2x + x/2y", "2^3^2", "-x^2", "x - -y",
        "-(x + 1)", "(-x)^2", "(x^2)^3", "x/(2y)", "a/b/c", "a*-b", "(x + 1)!", "3!!",
        "|x - 1| + ||x| - 2|", "log_2 x", "log10(x)", "sin 30°", "x squared times 3", "lnx",
        "2pix", "sin 2(x + 1)", "cos^-1 x", "sin cos x", "e^2x", "sin pi/6",
    ],
)
def test_a_reading_reads_back_as_the_same_expression(problem: str) -> None:
    # Given how the parser read the text
    reading = read_expression(normalize(problem))
    # When its explicit form is parsed again
    again = read_expression(reading.text)
    # Then it is the same expression, and writing it out again changes nothing
    assert sympy.simplify(again.expr - reading.expr) == 0
    assert again.text == reading.text
