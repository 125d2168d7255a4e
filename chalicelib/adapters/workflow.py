"""Step Functions adapter: StartExecution (and STS GetCallerIdentity to derive the machine's ARN).

The state machine ARN is derived from its configured name plus this function's region and
account, so no account id is ever configured.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import ThrottlingException

log = logging.getLogger(__name__)


def state_machine_arn(partition: str, region: str, account: str, name: str) -> str:
    """Return the ARN of a Standard state machine."""
    return f"arn:{partition}:states:{region}:{account}:stateMachine:{name}"


class Workflow:
    def __init__(self, sfn_client: Any, sts_client: Any, state_machine_name: str) -> None:
        self._sfn = sfn_client
        self._sts = sts_client
        self._name = state_machine_name

    @cached_property
    def _caller(self) -> tuple[str, str]:
        caller = self._sts.get_caller_identity()["Arn"]  # arn:{partition}:sts::{account}:...
        return caller.split(":")[1], caller.split(":")[4]

    @property
    def account(self) -> str:
        """The AWS account these functions run in."""
        return self._caller[1]

    @cached_property
    def arn(self) -> str:
        """The state machine's ARN in this function's region and account."""
        partition, account = self._caller
        return state_machine_arn(partition, self._sfn.meta.region_name, account, self._name)

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution named `name`; return False if that execution already exists.

        Raises ThrottlingException; other ClientErrors propagate so SQS redelivers the message.
        """
        try:
            self._sfn.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(payload))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ExecutionAlreadyExists":
                return False
            if code == "ThrottlingException":
                raise ThrottlingException(f"Step Functions throttled StartExecution: {exc}") from exc
            raise
        return True
