# SPDX-License-Identifier: Apache-2.0
"""A review the server cannot hold (no room under --body-memory before its wait for room ends)
is read through, keeping only its first bytes, and still answered 200 with its uid: denied
saying why for objects the webhook guards, allowed with a warning otherwise, recorded in the
audit log and counted. Bytes that are not a review keep their 400; the server keeps serving."""

CAP = 1 << 20


def test_a_cap_below_the_api_servers_largest_review_is_warned_about(start_server):
    low = start_server(max_body=CAP)
    lines = [l for l in low.log_lines() if "--max-body is below" in l.get("msg", "")]
    assert len(lines) == 1 and lines[0]["max_body"] == str(CAP)
    assert lines[0]["largest_review"] == "38797312"
    default = start_server()
    assert not [l for l in default.log_lines() if "--max-body is below" in l.get("msg", "")]
