"""Everything a session lent a GPU should measure, in one command (under 5 minutes on an
H200): the saved tensors of the validation grid's small shapes (`validation.run --device
cuda`, results-cuda.json) and whole steps of the seed's model (`validation.gpu_steps`,
results-cuda-steps.json). Commit what it writes; calc's tests read both.

    python -m validation.gpu_check
"""

from __future__ import annotations

import sys

from validation import gpu_steps, run


def main() -> int:
    status = run.main(["--device", "cuda"])
    return status or gpu_steps.main([])


if __name__ == "__main__":
    sys.exit(main())
