import os

# tqdm reads TQDM_* defaults when it is first imported (transformers imports it early): the CLI's
# own progress bars replace the libraries' bars, so switch theirs off before anything loads.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from harness.cli import app  # noqa: E402

app(prog_name="harness")
