"""Every example in the package's docstrings runs and prints what it says (scikit-learn's rule:
a docstring example is documentation that is tested). Examples marked ``# doctest: +SKIP`` need
a real model or data and are left to the integration tests."""
import doctest
import importlib
import pkgutil

import pytest

import workbench

MODULES = sorted(m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.")
                 if not m.name.startswith("workbench.__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        if test.filename is None or not test.filename.endswith(".py"):
            continue  # objects imported from elsewhere are tested in their own module
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples in {name} failed (see the output above)"
