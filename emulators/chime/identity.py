"""chime-sdk-identity: AppInstances, AppInstanceUsers and AppInstanceAdmins."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulators.chime.calls import Call, Handler, Output, paginate
from emulators.chime.config import EmulatorConfig
from emulators.chime.errors import conflict, not_found

_SEQUENCE = itertools.count()


@dataclass
class AppInstance:
    arn: str
    name: str
    metadata: str | None
    created: float
    updated: float
    admins: dict[str, float] = field(default_factory=dict)  # user ARN -> since
    # creation order where two share a timestamp (a coarse or standing clock)
    seq: int = field(default_factory=lambda: next(_SEQUENCE))

    def summary(self) -> Output:
        return _without_none(
            {"AppInstanceArn": self.arn, "Name": self.name, "Metadata": self.metadata}
        )

    def describe(self) -> Output:
        return {
            **self.summary(),
            "CreatedTimestamp": self.created,
            "LastUpdatedTimestamp": self.updated,
        }


@dataclass
class AppInstanceUser:
    arn: str
    app_instance_arn: str
    name: str
    metadata: str | None
    created: float
    updated: float
    expiration: dict[str, Any] | None = None

    def identity(self) -> Output:
        return {"Arn": self.arn, "Name": self.name}

    def summary(self) -> Output:
        return _without_none(
            {"AppInstanceUserArn": self.arn, "Name": self.name, "Metadata": self.metadata}
        )

    def describe(self) -> Output:
        return {
            **self.summary(),
            "CreatedTimestamp": self.created,
            "LastUpdatedTimestamp": self.updated,
            **({"ExpirationSettings": self.expiration} if self.expiration else {}),
        }


def _without_none(document: Output) -> Output:
    return {key: value for key, value in document.items() if value is not None}


class Identity:
    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self.app_instances: dict[str, AppInstance] = {}
        self.users: dict[str, AppInstanceUser] = {}
        self._tokens: dict[tuple[str, str], str] = {}

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateAppInstance": self.create_app_instance,
            "DescribeAppInstance": self.describe_app_instance,
            "ListAppInstances": self.list_app_instances,
            "UpdateAppInstance": self.update_app_instance,
            "DeleteAppInstance": self.delete_app_instance,
            "CreateAppInstanceUser": self.create_app_instance_user,
            "DescribeAppInstanceUser": self.describe_app_instance_user,
            "ListAppInstanceUsers": self.list_app_instance_users,
            "UpdateAppInstanceUser": self.update_app_instance_user,
            "DeleteAppInstanceUser": self.delete_app_instance_user,
            "CreateAppInstanceAdmin": self.create_app_instance_admin,
            "DescribeAppInstanceAdmin": self.describe_app_instance_admin,
            "ListAppInstanceAdmins": self.list_app_instance_admins,
            "DeleteAppInstanceAdmin": self.delete_app_instance_admin,
        }

    # Lookups shared with messaging.

    def app_instance(self, arn: str) -> AppInstance:
        found = self.app_instances.get(arn)
        if found is None:
            raise not_found(f"AppInstance {arn} does not exist")
        return found

    def user(self, arn: str) -> AppInstanceUser:
        found = self.users.get(arn)
        if found is None:
            raise not_found(f"AppInstanceUser {arn} does not exist")
        return found

    def is_admin(self, app_instance_arn: str, user_arn: str) -> bool:
        found = self.app_instances.get(app_instance_arn)
        return found is not None and user_arn in found.admins

    # AppInstances.

    def create_app_instance(self, call: Call) -> Output:
        token_key = ("app-instance", call.input["ClientRequestToken"])
        known = self._tokens.get(token_key)
        if known in self.app_instances:
            return {"AppInstanceArn": known}
        arn = f"arn:aws:chime:{call.region}:{self._config.account_id}:app-instance/{uuid.uuid4()}"
        self.app_instances[arn] = AppInstance(
            arn, call.input["Name"], call.get("Metadata"), call.now, call.now
        )
        self._tokens[token_key] = arn
        return {"AppInstanceArn": arn}

    def describe_app_instance(self, call: Call) -> Output:
        return {"AppInstance": self.app_instance(call.input["AppInstanceArn"]).describe()}

    def list_app_instances(self, call: Call) -> Output:
        ordered = sorted(self.app_instances.values(), key=lambda a: (a.created, a.seq))
        page, token = paginate(
            ordered, call, key=lambda a: [a.created, a.seq], scope="app-instances", default_max=50
        )
        return _without_none(
            {"AppInstances": [a.summary() for a in page], "NextToken": token},
        )

    def update_app_instance(self, call: Call) -> Output:
        found = self.app_instance(call.input["AppInstanceArn"])
        found.name, found.metadata = call.input["Name"], call.input["Metadata"]
        found.updated = call.now
        return {"AppInstanceArn": found.arn}

    def delete_app_instance(self, call: Call) -> Output:
        found = self.app_instance(call.input["AppInstanceArn"])
        del self.app_instances[found.arn]
        for arn in [u.arn for u in self.users.values() if u.app_instance_arn == found.arn]:
            del self.users[arn]
        return {}

    # AppInstanceUsers.

    def create_app_instance_user(self, call: Call) -> Output:
        instance = self.app_instance(call.input["AppInstanceArn"])
        arn = f"{instance.arn}/user/{call.input['AppInstanceUserId']}"
        token_key = ("user", call.input["ClientRequestToken"])
        if arn in self.users:
            if self._tokens.get(token_key) == arn:
                return {"AppInstanceUserArn": arn}
            raise conflict(f"AppInstanceUser {arn} already exists")
        self.users[arn] = AppInstanceUser(
            arn=arn,
            app_instance_arn=instance.arn,
            name=call.input["Name"],
            metadata=call.get("Metadata"),
            created=call.now,
            updated=call.now,
            expiration=call.get("ExpirationSettings"),
        )
        self._tokens[token_key] = arn
        return {"AppInstanceUserArn": arn}

    def describe_app_instance_user(self, call: Call) -> Output:
        return {"AppInstanceUser": self.user(call.input["AppInstanceUserArn"]).describe()}

    def list_app_instance_users(self, call: Call) -> Output:
        instance = self.app_instance(call.input["AppInstanceArn"])
        ordered = sorted(
            (u for u in self.users.values() if u.app_instance_arn == instance.arn),
            key=lambda u: u.arn,
        )
        page, token = paginate(
            ordered, call, key=lambda u: u.arn, scope=f"users:{instance.arn}", default_max=50
        )
        return _without_none(
            {
                "AppInstanceArn": instance.arn,
                "AppInstanceUsers": [u.summary() for u in page],
                "NextToken": token,
            }
        )

    def update_app_instance_user(self, call: Call) -> Output:
        found = self.user(call.input["AppInstanceUserArn"])
        found.name, found.metadata = call.input["Name"], call.input["Metadata"]
        found.updated = call.now
        return {"AppInstanceUserArn": found.arn}

    def delete_app_instance_user(self, call: Call) -> Output:
        found = self.user(call.input["AppInstanceUserArn"])
        del self.users[found.arn]
        instance = self.app_instances.get(found.app_instance_arn)
        if instance is not None:
            instance.admins.pop(found.arn, None)
        return {}

    # AppInstanceAdmins.

    def _admin_output(self, instance: AppInstance, user_arn: str) -> Output:
        return {
            "Admin": self.user(user_arn).identity(),
            "AppInstanceArn": instance.arn,
            "CreatedTimestamp": instance.admins[user_arn],
        }

    def create_app_instance_admin(self, call: Call) -> Output:
        instance = self.app_instance(call.input["AppInstanceArn"])
        admin = self.user(call.input["AppInstanceAdminArn"])
        if admin.app_instance_arn != instance.arn:
            raise not_found(f"AppInstanceUser {admin.arn} is not in AppInstance {instance.arn}")
        instance.admins.setdefault(admin.arn, call.now)
        return {"AppInstanceAdmin": admin.identity(), "AppInstanceArn": instance.arn}

    def describe_app_instance_admin(self, call: Call) -> Output:
        instance = self.app_instance(call.input["AppInstanceArn"])
        admin_arn = call.input["AppInstanceAdminArn"]
        if admin_arn not in instance.admins:
            raise not_found(f"{admin_arn} is not an AppInstanceAdmin of {instance.arn}")
        return {"AppInstanceAdmin": self._admin_output(instance, admin_arn)}

    def list_app_instance_admins(self, call: Call) -> Output:
        instance = self.app_instance(call.input["AppInstanceArn"])
        page, token = paginate(
            sorted(instance.admins),
            call,
            key=lambda arn: arn,
            scope=f"admins:{instance.arn}",
            default_max=50,
        )
        return _without_none(
            {
                "AppInstanceArn": instance.arn,
                "AppInstanceAdmins": [{"Admin": self.user(arn).identity()} for arn in page],
                "NextToken": token,
            }
        )

    def delete_app_instance_admin(self, call: Call) -> Output:
        instance = self.app_instance(call.input["AppInstanceArn"])
        if instance.admins.pop(call.input["AppInstanceAdminArn"], None) is None:
            raise not_found(f"{call.input['AppInstanceAdminArn']} is not an AppInstanceAdmin")
        return {}
