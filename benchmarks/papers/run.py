"""The real-paper dev set: how often the lab reads a published paper right.

``manifest.json`` lists real papers kept in public GitHub repositories (repository,
commit, path), each with its title and the numbers it reports for its own method on its
main metric (metric, method, expected value, page), every one checked by eye on the
rendered page. This runner reads each PDF from the repository's snapshot on this machine
(``/work/.mirror/<owner>+<name>/repo``, made by the sandbox's fetch tool, or
``--mirror DIR``) and says so when a snapshot is not there. It never downloads anything,
and arXiv is not asked: the titles measured are those read from the PDF's layout.

    .venv/bin/python benchmarks/papers/run.py [--mirror DIR] [--only SUBSTRING] [--json OUT]

Reports the share of main numbers returned first by ``paper_results``' matcher (target
>= 90%), titles right (target 100%), and tables found against "Table N" captions present
(numbered tables, as first measured; then with appendix labels such as "Table A5" too).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MIRROR = Path("/work/.mirror")
APPENDIX = re.compile(r"^[A-Z]\.?[0-9]+$")  # "A5", "S.1": appendix and supplement tables


def snapshot(mirror: Path, repo: str) -> Path | None:
    git_dir = mirror / repo.replace("/", "+") / "repo"
    return git_dir if git_dir.is_dir() else None


def read_pdf(git_dir: Path, commit: str, path: str, dest: Path) -> str | None:
    """Write the PDF at commit:path to ``dest``; an error text when the snapshot lacks it."""
    found = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "blob", f"{commit}:{path}"],
                           capture_output=True)
    if found.returncode != 0:
        return found.stderr.decode(errors="replace").strip()[:200] or "not in the snapshot"
    dest.write_bytes(found.stdout)
    return None


def same_title(got: str, want: str) -> bool:
    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())
    return norm(got) == norm(want)


def labels(texts: list[str]) -> set[str]:
    """The table numbers the paper's captions name ("Table 3: ..." -> "3")."""
    from sotalab.tools.papers import tables

    return {m.group(2) for text in texts for line in text.splitlines() if (m := tables.CAPTION.match(line))
            and len(line.strip()) > 8}


def check(paper: dict, pdf: Path) -> dict:
    from sotalab.tools.papers import extract, results

    started = time.process_time()
    extraction = extract.extract(pdf)
    cpu = time.process_time() - started
    present = labels(extraction["texts"])
    found = {t["label"].split()[-1] for t in extraction["tables"] if t["label"]}
    found |= {m.group(2) for t in extraction["image_tables"] if (m := re.match(r"\W*(Table|TABLE)\s+(\w+)", t["caption"]))}
    numbers = []
    for entry in paper.get("numbers", []):
        cells = results.find(extraction["tables"], entry["metric"], entry.get("method"))
        first = cells[0] if cells else None
        numbers.append({**entry, "got": first and first["value"], "got_page": first and first["page"],
                        "right": bool(first) and first["value"] is not None
                        and abs(first["value"] - entry["expected"]) < 1e-6 and first["page"] == entry["page"]})
    numbered = {label for label in present if not APPENDIX.match(label)}
    return {"title_got": extraction["metadata"]["title"], "title_right": same_title(extraction["metadata"]["title"],
                                                                                  paper["title"]),
            "tables_present": len(numbered), "tables_found": len(numbered & found),
            "all_present": len(present), "all_found": len(present & found), "tables_extra": len(found - present),
            "uncaptioned": sum(1 for t in extraction["tables"] if not t["label"]),
            "numbers": numbers, "cpu_s": round(cpu, 2), "pages": extraction["page_count"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    manifest = json.loads((HERE / "manifest.json").read_text())
    report, missing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for paper in manifest["papers"]:
            if args.only not in paper["path"] + paper["title"]:
                continue
            git_dir = snapshot(args.mirror, paper["repo"])
            if git_dir is None:
                missing.append(f"{paper['repo']}: no snapshot under {args.mirror} (fetch github:{paper['repo']})")
                continue
            pdf = Path(tmp) / "paper.pdf"
            if problem := read_pdf(git_dir, paper["commit"], paper["path"], pdf):
                missing.append(f"{paper['repo']}:{paper['path']}: {problem}")
                continue
            result = check(paper, pdf) | {"title": paper["title"], "path": paper["path"]}
            report.append(result)
            marks = " ".join(f"{'ok' if n['right'] else 'MISS'}[{n['metric']}/{n.get('method')}: want "
                             f"{n['expected']} p{n['page']}, got {n['got']} p{n['got_page']}]" for n in result["numbers"])
            print(f"{'ok  ' if result['title_right'] else 'MISS'} {paper['title'][:60]:60} tables "
                  f"{result['tables_found']}/{result['tables_present']} ({result['cpu_s']:.1f} s CPU) {marks}",
                  flush=True)
            if not result["title_right"]:
                print(f"     title read: {result['title_got'][:100]!r}")
    numbers = [n for r in report for n in r["numbers"]]
    print(f"\npapers read: {len(report)}; not on this machine: {len(missing)}")
    for line in missing:
        print(f"  missing: {line}")
    if report:
        print(f"titles right: {sum(r['title_right'] for r in report)}/{len(report)}")
        print(f"main numbers returned first: {sum(n['right'] for n in numbers)}/{len(numbers)} "
              f"({100 * sum(n['right'] for n in numbers) / max(1, len(numbers)):.0f}%)")
        print(f"tables found: {sum(r['tables_found'] for r in report)} of {sum(r['tables_present'] for r in report)} "
              f"numbered captioned tables present ({sum(r['all_found'] for r in report)} of "
              f"{sum(r['all_present'] for r in report)} with appendix labels); "
              f"{sum(r['uncaptioned'] for r in report)} uncaptioned tables kept; "
              f"CPU {sum(r['cpu_s'] for r in report):.0f} s for {sum(r['pages'] for r in report)} pages")
    if args.json:
        args.json.write_text(json.dumps({"papers": report, "missing": missing}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
