"""`dunning import-levels`: the whole file is checked, every bad row named by its line."""

from __future__ import annotations

from datetime import date

import pytest

from dunning.commands.migration import BadFile, read_levels

HEADER = "account_id,item_id,level,last_dunned_date,interest_until_date,notice_date\n"


def test_good_rows_become_records_with_ids_derived_from_their_content(tmp_path):
    f = tmp_path / "ok.csv"
    f.write_text(HEADER + "A1,I1,2,2024-02-04,2024-02-04,\nA1,I2,3,2024-02-04,,2024-02-09\n")
    one, two = read_levels(str(f))
    assert one["level"] == 2 and one["interest_until_date"] == date(2024, 2, 4)
    assert one["notice_date"] is None and two["notice_date"] == date(2024, 2, 9)
    assert one["event_id"].startswith("import-") and one["event_id"] == read_levels(str(f))[0][
        "event_id"]


def test_every_bad_row_is_reported_with_its_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + "A1,I1,2,2024-02-04,,\n"     # 2: good
                 "A1,I2,0,2024-02-04,,\n"              # 3: level 0
                 "A1,I3,2,2024-13-01,,\n"              # 4: not a date
                 ",I4,2,2024-02-04,,\n"                # 5: no account
                 "A1,I5,2,2024-02-04,,2024-02-01\n"    # 6: notice before last dunned
                 "A1,I1,1,2024-01-04,,\n")             # 7: same item as line 2
    with pytest.raises(BadFile) as err:
        read_levels(str(f))
    assert [n for n, _ in err.value.errors] == [3, 4, 5, 6, 7]


def test_a_wrong_header_is_line_1(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("account,item_id,level\nA1,I1,2\n")
    with pytest.raises(BadFile) as err:
        read_levels(str(f))
    assert err.value.errors[0][0] == 1
