"""Issue 14: text that states a measured result is built from the measurement (labs 08, 10),
and says when this machine differs from the lab machine."""
from xdplab.tools.qos import FastSlow, Phase
from xdplab.tools.receive_paths import Comparison, Trial


def _fastslow(phases, offered="80mbit"):
    f = FastSlow.__new__(FastSlow)          # the numbers only: no topology needed to word them
    f.phases, f.rate, f.offered = phases, "10mbit", offered
    return f


def test_qos_results_have_no_nan_or_stray_floats_and_show_the_burst():
    ph = [Phase("kernel", 2, 20000, 1000, 2_500_000, 2400, {"packets": 2400, "drops": 17000}, 0, 10_000_000),
          Phase("xdp", 2, 20000, 1000, 20_000_000, 20000, {"packets": 0, "drops": 0}, 0, 10_000_000,
                {"flushed": 18600, "lost": 0}),
          Phase("policed", 2, 20000, 1000, 2_400_000, 2300, {"packets": 0}, 17000, 10_000_000, None, "128kb"),
          Phase("policed", 2, 20000, 1000, 600_000, 600, {"packets": 0}, 19000, 10_000_000, None, "16kb")]
    import pandas as pd
    df = pd.DataFrame([p.row() for p in ph])
    text = df.to_string()
    assert "NaN" not in text and "18600.0" not in text and "18600" in text
    assert list(df["policer burst"]) == ["—", "—", "128kb", "16kb"]
    assert list(df["shaped to Mbit/s"]) == [10] * 4
    said = _fastslow(ph).explain().data
    assert "`kernel`: 10.0 Mbit/s delivered of 80.0 offered" in said
    assert "`policed` (burst 16kb): 2.4 Mbit/s" in said and "The 16kb bucket let 25%" in said
    assert "differs" not in said


def test_qos_text_says_when_this_machine_differs():
    ph = [Phase("kernel", 2, 8000, 1000, 1_000_000, 1000, {"packets": 1000, "drops": 7000}, 0, 10_000_000),
          Phase("policed", 2, 8000, 1000, 2_000_000, 2000, {"packets": 0}, 6000, 10_000_000, None, "128kb"),
          Phase("policed", 2, 8000, 1000, 1_900_000, 1900, {"packets": 0}, 6100, 10_000_000, None, "16kb")]
    said = _fastslow(ph).explain().data
    assert "less than its rate" in said                      # tbf delivered 4 of 10 Mbit/s
    assert "the sender offered less than 80 Mbit/s" in said  # 32 of 80 offered
    assert "about as much through" in said                   # 16kb ~ 128kb


def test_qos_text_says_when_the_sender_offered_too_little_to_show_the_effect():
    # a loaded machine: 4900 frames of 1000 B in 2 s = 19.6 Mbit/s offered, and 12 in one phase
    ph = [Phase("kernel", 2, 4900, 1000, 2_400_000, 2400, {"packets": 2400, "drops": 2500}, 0, 10_000_000),
          Phase("xdp", 2, 4900, 1000, 4_900_000, 4900, {"packets": 0, "drops": 0}, 0, 10_000_000,
                {"flushed": 4900, "lost": 0}),
          Phase("policed", 2, 3000, 1000, 3_000_000, 3000, {"packets": 0, "drops": 0}, 0, 10_000_000, None, "128kb")]
    said = _fastslow(ph).explain().data
    assert "`xdp`: 19.6 Mbit/s delivered of 19.6 offered" in said
    assert "offered too little to show the effect in `policed`: 12.0 Mbit/s" in said
    assert "`kernel`" not in said.split("too little")[1]            # 19.6 > 1.5 x 10 showed it
    ph[2] = Phase("policed", 2, 4900, 1000, 2_400_000, 2400, {"packets": 0, "drops": 0}, 2500, 10_000_000, None, "128kb")
    assert "too little" not in _fastslow(ph).explain().data


def _cmp(batch, packet):
    return Comparison([Trial("af_xdp batch", batch, 0.5, 0.3, 2_000_000, 0),
                       Trial("af_packet", packet, 0.5, 0.5, 2_000_000, 1_000_000)], "6.18", 0, [1], 60)


def test_afxdp_text_is_the_measurement_and_says_when_it_differs():
    said = _cmp(2_000_000, 400_000).explain().data
    assert "`af_xdp batch` > `af_packet`" in said and "**5.0× AF_PACKET**" in said
    assert "`af_xdp batch`: 4.00 M packets/s" in said and "1,000,000 socket drops" in said
    assert "As on the lab machine" in said
    slow = _cmp(800_000, 400_000).explain().data
    assert "This machine differs" in slow and "here 2.0×" in slow
    reversed_ = _cmp(300_000, 400_000).explain().data
    assert "`af_packet` > `af_xdp batch`" in reversed_ and "Unexpected order" in reversed_
