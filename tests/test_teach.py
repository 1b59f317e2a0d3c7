import nbformat
import pytest

from workbench.analysis.teach import PLACEHOLDER, WRITTEN_PLACEHOLDER, main, student_copy, student_notebook


def notebook():
    v4 = nbformat.v4
    solution = {"tags": ["solution"]}
    executed = v4.new_code_cell("print(1)", execution_count=3,
                                outputs=[v4.new_output("stream", name="stdout", text="1\n")])
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("# Title"),
        executed,
        v4.new_markdown_cell("## Exercises\n1. Do it."),
        v4.new_code_cell("answer = 42", metadata=solution),
        v4.new_markdown_cell("answer text", metadata=solution),  # a written answer
        v4.new_markdown_cell("2. And this."),
        v4.new_code_cell("answer = 43", metadata={"tags": ["solution", "other"]}),
    ])


def test_solutions_become_placeholders_and_outputs_go():
    nb = notebook()
    out = student_notebook(nb)
    sources = [c.source for c in out.cells]
    assert sources == ["# Title", "print(1)", "## Exercises\n1. Do it.", PLACEHOLDER, WRITTEN_PLACEHOLDER,
                       "2. And this.", PLACEHOLDER]
    assert [c.cell_type for c in out.cells][3:5] == ["code", "markdown"]
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert len({c["id"] for c in out.cells}) == len(out.cells)
    nbformat.validate(out)
    assert len(nb.cells) == 7 and nb.cells[1].outputs, "the original is left untouched"


def test_student_copy_writes_next_to_nothing_it_should_not(tmp_path):
    source = tmp_path / "01_x.ipynb"
    nbformat.write(notebook(), source)
    assert main([str(source), "--out", str(tmp_path / "teach")]) == 0
    copy = nbformat.read(tmp_path / "teach" / "01_x.ipynb", as_version=4)
    assert "answer = 42" not in str(copy) and "answer text" not in str(copy)
    with pytest.raises(ValueError, match="overwrite"):
        student_copy(source, tmp_path)
    with pytest.raises(ValueError, match="make sync"):
        student_copy(tmp_path / "01_x.py", tmp_path / "teach")
