"""``manage.py export_schemas DIR``: write one JSON Schema file per pipeline payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.schemas import PAYLOADS, VideoStatus

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Command(BaseCommand):
    """Write ``<Payload>.json`` (JSON Schema 2020-12) for every payload, for modules not written in Python."""

    help = "Write one JSON Schema file per pipeline payload (common.schemas) into DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        """Take the output directory and the schema mode."""
        parser.add_argument("directory", metavar="DIR", help="Directory to write into (created if missing).")
        parser.add_argument(
            "--mode",
            choices=("validation", "serialization"),
            default="validation",
            help="Schema of what a payload accepts (validation, the default) or of what it emits (serialization).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Write the files and list them."""
        directory = Path(options["directory"])
        mode = options["mode"]
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory; give a directory to write the schemas into")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create directory {directory}: {exc.strerror or exc}") from exc

        documents: dict[str, dict[str, Any]] = {
            model.__name__: model.model_json_schema(mode=mode) for model in PAYLOADS
        }
        documents["VideoStatus"] = {
            "title": "VideoStatus",
            "description": VideoStatus.__doc__,
            "type": "string",
            "enum": [status.value for status in VideoStatus],
        }
        written = 0
        for name, schema in documents.items():
            path = directory / f"{name}.json"
            document = {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{name}.json", **schema}
            try:
                path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc
            written += 1
            if options["verbosity"] >= 2:
                self.stdout.write(str(path))
        self.stdout.write(self.style.SUCCESS(f"Wrote {written} JSON Schema files ({mode}) to {directory}"))
