"""The several-tasks error names the CLI's --task as well as the Python keyword."""
import pytest

from sdtools.classify import _task
from sdtools.errors import DataError


class _TwoTasks:
    spec = "synthetic:n=4"

    def class_labels(self):
        return {"shape": object(), "colour": object()}


def test_several_tasks_error_names_the_cli_option():
    with pytest.raises(DataError, match=r"--task TASK .*task=TASK in Python"):
        _task(_TwoTasks(), None)
