from __future__ import annotations

from django.core.management.base import BaseCommand

from tasks.models import MODELS


class Command(BaseCommand):
    help = (
        "Create the DynamoDB tables if they do not exist, and the indexes an "
        "existing table lacks (safe to run again)."
    )

    def handle(self, *args, **options) -> None:
        for model in MODELS:
            name = model.Meta.table_name
            if model.exists():
                added = add_missing_indexes(model)
                state = f"exists, added {', '.join(added)}" if added else "exists"
            else:
                model.create_table(wait=True)
                state = "created"
            if options["verbosity"] > 0:
                self.stdout.write(f"{name}: {state}")


def add_missing_indexes(model) -> list[str]:
    """Create the model's global secondary indexes the stored table lacks
    (e.g. a local mode's state from before the index existed)."""
    connection = model._get_connection()
    table = connection.describe_table()
    have = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    schema = model._get_schema()
    attributes = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    added = []
    for index in schema["global_secondary_indexes"]:
        if index["index_name"] in have:
            continue
        keys = [k["AttributeName"] for k in index["key_schema"]]
        connection.connection.dispatch(
            "UpdateTable",
            {
                "TableName": model.Meta.table_name,
                "AttributeDefinitions": [
                    {"AttributeName": k, "AttributeType": attributes[k]} for k in keys
                ],
                "GlobalSecondaryIndexUpdates": [
                    {
                        "Create": {
                            "IndexName": index["index_name"],
                            "KeySchema": index["key_schema"],
                            "Projection": index["projection"],
                        }
                    }
                ],
            },
        )
        added.append(index["index_name"])
    return added
