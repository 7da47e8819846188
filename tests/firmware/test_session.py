# The whole console app through a scripted shift on the unix port, inside
# the 96 KB heap: every press journaled, sent, acked once and in order.
import session


def test_ten_thousand_presses_within_the_heap():
    r = session.run(10000, seed=3)
    print(r)
    assert r["presses"] >= 10000
    assert r["duplicates"] == 0 and r["out_of_order"] == 0
    assert r["refused"] == 0
    # Every journaled event reached the host and was acknowledged.
    assert r["events_received"] == r["journal_next_seq"] - 1
    assert r["journal_depth"] == 0
