# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Replication scorecard
#
# Every result the paper reports {cite}`faruqui2025explainability`, beside what this book
# measured of it on this run. The left column is the paper's; everything else is read from
# `artifacts/<profile>/results.json`, which the chapters wrote while they executed — nothing on
# this page is typed in. Each status follows a rule written in `wrenlib.scorecard`:
#
# - **reproduced** — the book measures what the paper reported;
# - **reproduced in part** — part of it holds and part does not, or is not decided (a chapter's
#   *qualified* verdict), and the row says which;
# - **holds by construction** — what the paper reported is true of any input, so it shows
#   nothing about the data, and the row says why;
# - **differs** — the book measures something else, and the row says what;
# - **undecided** — on this run the book's measurement cannot tell (no comparison told the maps
#   apart, an interval holds the threshold, or a test did not reject), and the row says what it
#   measured;
# - **not testable** — the paper's statement cannot be checked on the book's data, and why;
# - **not run** — the chapter that measures it did not run (the row names the missing numbers).
#
# A chapter's verdict on one of the paper's claims becomes a status: confirmed → reproduced,
# qualified → reproduced in part, refuted → differs (the book measured the same thing and found
# the opposite), undecided → undecided. The book's data are surrogate songs whose dialect
# evidence is known (chapter 01), so a "differs" is a finding about the method, never a claim
# about the paper's birds.
#
# Where a claim rests on several comparisons, the chapter decides them together (Holm's method
# keeps the chance of any false call within that claim at 5 %). The rows are not corrected
# against one another: among this many rows, each decided by its own tests at the 5 % level, one
# call may be chance, so read a row with the intervals and p-values its chapter gives.

# %% tags=["remove-cell"]
import subprocess, sys  # noqa: E401
if "google.colab" in sys.modules:  # on Colab, install the book's library first (make install did it elsewhere)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "wrenlib[book] @ git+https://github.com/wrenbook/wrenbook"],
                   check=True)

# %% tags=["parameters"]
PROFILE = "quick"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import HTML, display
from myst_nb import glue

import wrenlib
from wrenlib.scorecard import STATUSES, open_questions, scorecard, status_counts_text

results = wrenlib.read_results(PROFILE)
card = scorecard(results)
COLOURS = {"reproduced": "#2a9d8f", "reproduced in part": "#a7d7c5", "holds by construction": "#8ecae6",
           "differs": "#e9c46a", "undecided": "#f4f1de",
           "not testable": "#adb5bd", "not run": "#e76f51"}


def linked(table):
    """The table as HTML, each chapter a link to its page, each status coloured."""
    shown = table.copy()
    shown["chapter"] = [", ".join(f'<a href="{name}.html">{name.split("_", 1)[0]}</a>' for name in names.split(", "))
                        for names in shown["chapter"]]  # a row may rest on several chapters
    if "status" in shown:
        shown["status"] = [f'<span style="background:{COLOURS[s]};padding:1px 6px;border-radius:3px">{s}</span>'
                           for s in shown["status"]]
    return HTML(shown.to_html(index=False, escape=False, classes="scorecard"))


display(linked(card))
counts = card["status"].value_counts().reindex(list(STATUSES), fill_value=0)
glue("counts_text", status_counts_text(counts.to_dict()), display=False)
wrenlib.record_result(PROFILE, "scorecard_status_counts", counts.to_dict(), glue=False)

# %% [markdown]
# {glue:text}`counts_text`
# The one number both sides report, the test accuracy, with the book's 95 % interval and the
# accuracy an ideal observer of the surrogate's diagnostic features reaches (chapter 01):

# %% tags=["hide-input"] mystnb={"image": {"alt": "Left: test accuracy as points for the paper (real recordings), the book's CNN with its 95 percent interval, and the ideal observer; right: horizontal bars counting the paper's results per status, colour-coded."}}
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 2.8), gridspec_kw={"width_ratios": [3, 2]})
rows = [("paper (real recordings)", 0.948, None, None)]
if "test_accuracy" in results:
    rows.append(("book, CNN (surrogate)", results["test_accuracy"], results["test_accuracy_ci_low"],
                 results["test_accuracy_ci_high"]))
if "ideal_observer_accuracy" in results:
    rows.append(("book, ideal observer", results["ideal_observer_accuracy"], None, None))
for y, (name, value, low, high) in enumerate(rows):
    error = None if low is None else [[value - low], [high - value]]
    left.errorbar(value, y, xerr=error, fmt="o", capsize=4, color="#264653" if y else "#e76f51")
    left.text(value, y - 0.22, f"{100 * value:.1f} %", ha="center", fontsize=8)  # above the point (y is inverted)
left.set_yticks(range(len(rows)), [r[0] for r in rows])
left.set_xlim(0.5, 1.0)
left.set_ylim(-0.5, len(rows) - 0.3)
left.set_xlabel("test accuracy")
left.invert_yaxis()
right.barh(list(counts.index), counts.values, color=[COLOURS[s] for s in counts.index])
right.invert_yaxis()
right.set_xlabel("results")
right.set_title("status of the paper's results", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The paper's open questions
#
# Three questions the paper left open, answered on the surrogate songs (each answer is a
# measurement of this run, with the chapter that makes it):

# %% tags=["hide-input"]
display(linked(open_questions(results)))

# %% [markdown]
# The profile, device, package versions and the time each chapter took are on the
# [status page](../status.md).
