"""The privilege class of a scope list (models.context.privilege_class): the blast-radius
weight of a stolen token. Scope names from the products' own vocabularies."""

from __future__ import annotations

import pytest

from tokenlib.analysis.models.context import privilege_class


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        # generic OAuth scopes and the bundled inventory's vocabulary
        ("openid profile offline_access", "read"),
        ("orders:read", "read"),
        ("orders:write", "write"),
        ("payments-core:write ledger:read", "write"),
        ("admin", "admin"),
        ("read write admin", "admin"),
        ("", "read"),
        # Microsoft Graph application permissions (permissions reference)
        ("User.Read.All", "read"),
        ("Mail.ReadWrite", "write"),
        ("Mail.Send", "write"),
        ("Directory.ReadWrite.All", "write"),
        ("Sites.FullControl.All", "admin"),
        ("RoleManagement.ReadWrite.Directory", "admin"),
        ("AppRoleAssignment.ReadWrite.All", "admin"),
        ("User.Read.All Mail.ReadWrite", "write"),
        # Keycloak realm-management client roles
        ("view-users", "read"),
        ("manage-users", "admin"),
        ("realm-admin", "admin"),
        # the strongest scope of the list wins, whatever its position
        ("read Mail.Send read", "write"),
    ],
)
def test_privilege_class(scopes: str, expected: str) -> None:
    assert privilege_class(scopes) == expected
