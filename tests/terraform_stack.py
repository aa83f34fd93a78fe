"""Read terraform/ with python-hcl2 and resolve the simple references the
IAM policies and names use, for one stage, region and account.

terraform itself cannot run here (`terraform init` cannot download the AWS
provider), so the tests evaluate the small part of the language these files
use: `${var.x}`, `${local.x}`, `${data.aws_caller_identity...}`,
`${data.aws_partition...}` and a resource's `name` and `arn`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"
PARTITION = "aws"
_REFERENCE = re.compile(r"\$\{([^{}]+)\}")

# What `arn` is for each resource type the policies refer to.
ARN_FORMATS = {
    "aws_dynamodb_table": "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    "aws_sqs_queue": "arn:{partition}:sqs:{region}:{account}:{name}",
    "aws_iam_role": "arn:{partition}:iam::{account}:role/{name}",
    "aws_scheduler_schedule_group": "arn:{partition}:scheduler:{region}:{account}:schedule-group/{name}",
    "aws_cloudwatch_log_group": "arn:{partition}:logs:{region}:{account}:log-group:{name}",
}


class Unresolvable(Exception):
    """An expression beyond the references this reader evaluates."""


@dataclass
class Stack:
    stage: str = "dev"
    region: str = "us-east-1"
    account: str = "123456789012"
    directory: Path = TERRAFORM_DIR
    resources: dict[str, dict[str, dict]] = field(default_factory=dict)
    data: dict[str, dict[str, dict]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        options = hcl2.SerializationOptions(
            strip_string_quotes=True, with_comments=False, explicit_blocks=False
        )
        for path in sorted(self.directory.glob("*.tf")):
            with path.open() as file:
                parsed = hcl2.load(file, serialization_options=options)
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for block in parsed.get(kind, []):
                    for type_, named in block.items():
                        target.setdefault(type_, {}).update(named)
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for block in parsed.get("variable", []):
                self.variables.update(block)

    # --- evaluation ----------------------------------------------------------------

    def var(self, name: str) -> Any:
        given = {"stage": self.stage, "region": self.region}
        if name in given:
            return given[name]
        return self.variables[name]["default"]

    def reference(self, expression: str) -> Any:
        parts = expression.strip().split(".")
        match parts:
            case ["var", name]:
                return self.var(name)
            case ["local", name]:
                return self.resolve(self.locals[name])
            case ["data", "aws_caller_identity", _, "account_id"]:
                return self.account
            case ["data", "aws_partition", _, "partition"]:
                return PARTITION
            case [type_, name, "name"] if type_ in self.resources:
                return self.resolve(self.resources[type_][name]["name"])
            case [type_, name, "arn"] if type_ in ARN_FORMATS:
                return ARN_FORMATS[type_].format(
                    partition=PARTITION,
                    region=self.region,
                    account=self.account,
                    name=self.reference(f"{type_}.{name}.name"),
                )
        raise Unresolvable(expression)

    def resolve(self, value: Any) -> Any:
        """A string with every `${reference}` replaced; lists element-wise."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, str):
            return value
        whole = _REFERENCE.fullmatch(value)
        if whole:  # keeps non-string values (booleans, numbers) as they are
            return self.reference(whole.group(1))
        return _REFERENCE.sub(lambda m: str(self.reference(m.group(1))), value)

    # --- queries ---------------------------------------------------------------------

    def resource(self, type_: str, name: str) -> dict:
        return self.resources[type_][name]

    def policy_document(self, name: str) -> list[dict]:
        """The statements of a `data "aws_iam_policy_document"`, resolved."""
        statements = []
        for raw in self.data["aws_iam_policy_document"][name].get("statement", []):
            statements.append(
                {
                    "sid": raw.get("sid", ""),
                    "effect": raw.get("effect", "Allow"),
                    "actions": raw.get("actions", []),
                    "not_actions": raw.get("not_actions", []),
                    "resources": self.resolve(raw.get("resources", [])),
                    "not_resources": raw.get("not_resources", []),
                    "principals": [
                        {"type": p["type"], "identifiers": p["identifiers"]}
                        for p in raw.get("principals", [])
                    ],
                    "conditions": [
                        {
                            "test": c["test"],
                            "variable": c["variable"],
                            "values": self.resolve(c["values"]),
                        }
                        for c in raw.get("condition", [])
                    ],
                }
            )
        return statements

    def role_policy_document(self, role: str) -> str:
        """The policy document name an aws_iam_role_policy of this role uses."""
        for policy in self.resources["aws_iam_role_policy"].values():
            if policy["role"] == f"${{aws_iam_role.{role}.id}}":
                return _document_name(policy["policy"])
        raise KeyError(role)

    def trust_document(self, role: str) -> str:
        return _document_name(self.resource("aws_iam_role", role)["assume_role_policy"])


def _document_name(reference: str) -> str:
    match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", reference)
    if not match:
        raise Unresolvable(f"not a policy document reference: {reference}")
    return match.group(1)
