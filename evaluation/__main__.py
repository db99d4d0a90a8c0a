r"""Score generated clips against reference clips with the paper's metrics.

    python -m evaluation --generated res/gen --reference data/ref --out results/ \
        --syncnet ckpts/syncnet_v2.model --inception ckpts/pt_inception-2015-12-05-6726825d.pth

Clips pair by file stem. Writes results.md, results.csv, results.json and plots/ into --out; a
rerun scores only new or changed clips (per-clip cache in <out>/cache/). A metric whose weights
are not given is listed as skipped with the flag that enables it.
"""

import sys

from .cli import add_metric_flags, check_out_folder, config_from_args, parser_from_doc, run
from .report import write_report
from .runner import evaluate_folders


def main(argv: list[str] | None = None) -> int:
    parser = parser_from_doc("python -m evaluation", __doc__)
    parser.add_argument("--generated", required=True, help="folder of generated videos")
    parser.add_argument("--reference", required=True, help="folder of reference videos (same file stems)")
    parser.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    add_metric_flags(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        out = check_out_folder(args.out)
        results = evaluate_folders(args.generated, args.reference, out, config_from_args(args), not args.quiet)
        paths = write_report(results, out)
        print(paths[2].read_text())
        for name, flag in results.skipped.items():
            print(f"skipped {name}: give {flag}", file=sys.stderr)
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
