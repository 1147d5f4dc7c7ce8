"""This machine's CPU read from fake /proc and /sys trees, the roofline derived from it, and the host-cpu
profile that uses it (`profiles show host-cpu` shows the derived numbers with their source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepool import hostinfo, profiles
from edgepool.errors import ProfileError

X86_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat sse sse2 ht syscall nx lm"


def cpu_block(n: int, flags: str, *, model: str = "AMD EPYC", mhz: str | None = "2445.426", core: int | None = None,
              phys: int = 0, key: str = "flags") -> str:
    lines = [f"processor\t: {n}", "vendor_id\t: Some", f"model name\t: {model}"]
    if mhz is not None:
        lines.append(f"cpu MHz\t\t: {mhz}")
    if core is not None:
        lines += [f"physical id\t: {phys}", f"core id\t\t: {core}"]
    lines.append(f"{key}\t\t: {flags}")
    return "\n".join(lines) + "\n\n"


def fake_tree(root: Path, blocks: list[str], max_khz: dict[int, int] | None = None) -> Path:
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cpuinfo").write_text("".join(blocks))
    for n, khz in (max_khz or {}).items():
        d = root / "sys" / "devices" / "system" / "cpu" / f"cpu{n}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "cpuinfo_max_freq").write_text(f"{khz}\n")
    return root


def test_avx2_fma_no_cpufreq_uses_cpu_mhz(tmp_path):
    """This machine: AMD EPYC (Zen 3), 2 vCPUs, AVX2 + FMA, no cpufreq, no clock in the model name."""
    flags = f"{X86_FLAGS} fma sse4_1 sse4_2 avx avx2 ssse3"
    root = fake_tree(tmp_path, [cpu_block(0, flags, core=0), cpu_block(1, flags, core=1)])
    cpu = hostinfo.read_cpu(root, affinity={0, 1})
    assert cpu.arch == "x86" and cpu.cores == 2 and cpu.ghz == pytest.approx(2.445426)
    assert "cpu MHz" in cpu.clock_source and "boost may be higher" in cpu.clock_source
    p = hostinfo.derive_peaks(cpu)
    assert (p.lanes, p.fma_units, p.int8_factor, p.amx_int8_macs) == (8, 2, 2, 0)
    assert p.fp32_gmacs == pytest.approx(2 * 2.445426 * 16, abs=1e-3)
    assert p.int8_gmacs == pytest.approx(2 * 2.445426 * 32, abs=1e-3)
    assert p.fp32_source().startswith("derived: avx2 fma, 2 cores, 2.45 GHz (/proc/cpuinfo cpu MHz")
    assert "2 x 2.45 GHz x 16 fp32 MAC/cycle (8 lanes x 2 FMA units, assumed) = 78.25" in p.fp32_source()
    assert "x 32 int8 MAC/cycle (16 fp32 x 2: 2 int8 MACs per 16-bit lane" in p.int8_source()


def test_avx512_vnni_amx_with_cpufreq_and_smt(tmp_path):
    """4 logical CPUs on 2 cores (SMT siblings share units); cpufreq's max clock wins over cpu MHz and the name."""
    flags = f"{X86_FLAGS} fma avx avx2 avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16"
    model = "Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz"
    blocks = [cpu_block(n, flags, model=model, mhz="1200.000", core=n // 2) for n in range(4)]
    root = fake_tree(tmp_path, blocks, {n: 3_800_000 for n in range(4)})
    cpu = hostinfo.read_cpu(root, affinity={0, 1, 2, 3})
    assert cpu.cores == 2 and len(cpu.cpus) == 4
    assert cpu.ghz == pytest.approx(3.8) and cpu.clock_source == "cpufreq cpuinfo_max_freq"
    p = hostinfo.derive_peaks(cpu)
    assert p.fp32_macs_per_cycle == 32 and p.int8_macs_per_cycle == 32 * 4 + 1024
    assert p.fp32_gmacs == pytest.approx(2 * 3.8 * 32) and p.int8_gmacs == pytest.approx(2 * 3.8 * 1152)
    assert p.isa == ("avx512f", "fma", "avx512_vnni", "amx_int8")
    assert p.summary == "avx512f fma avx512_vnni amx_int8, 2 cores, 3.80 GHz (cpufreq cpuinfo_max_freq)"
    # pinned to two siblings of one core: one core's units
    assert hostinfo.read_cpu(root, affinity={0, 1}).cores == 1
    # a profile with fewer threads than cores: its threads' worth
    one = hostinfo.derive_peaks(cpu, max_cores=1)
    assert one.fp32_gmacs == pytest.approx(3.8 * 32) and "1 cores (the profile's 1 threads; 2 usable)" in one.summary


def test_model_name_clock_when_higher_than_cpu_mhz(tmp_path):
    """An idle CPU reports 1.2 GHz in cpu MHz; the name's base clock is the higher, so the roofline's."""
    flags = f"{X86_FLAGS} fma avx avx2 avx_vnni"
    model = "Intel(R) Core(TM) i7-12700 @ 2.10GHz"
    root = fake_tree(tmp_path, [cpu_block(n, flags, model=model, mhz="1200.000") for n in range(2)])
    cpu = hostinfo.read_cpu(root, affinity={0, 1})
    assert cpu.cores == 2  # no core ids: each CPU counts
    assert cpu.ghz == pytest.approx(2.1) and cpu.clock_source == "the model name's base clock"
    p = hostinfo.derive_peaks(cpu)
    assert (p.lanes, p.int8_factor) == (8, 4) and p.int8_gmacs == pytest.approx(2 * 2.1 * 64)


def test_arm_with_dot_product(tmp_path):
    """A Raspberry Pi 5: /proc/cpuinfo has "Features", no clock; cpufreq has it."""
    feats = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    blocks = [f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {feats}\nCPU part\t: 0xd0b\n\n" for n in range(4)]
    root = fake_tree(tmp_path, [*blocks, "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n"], {n: 2_400_000 for n in range(4)})
    cpu = hostinfo.read_cpu(root, affinity={0, 1, 2, 3})
    assert cpu.arch == "arm" and cpu.cores == 4 and cpu.ghz == pytest.approx(2.4)
    p = hostinfo.derive_peaks(cpu)
    assert p.isa == ("asimd", "asimddp") and (p.lanes, p.fma_units, p.int8_factor) == (4, 2, 4)
    assert p.fp32_gmacs == pytest.approx(4 * 2.4 * 8) and p.int8_gmacs == pytest.approx(4 * 2.4 * 32)


def test_nothing_readable_gives_no_peaks_and_says_why(tmp_path):
    assert hostinfo.read_cpu(tmp_path) is None
    assert hostinfo.derive_peaks(None) is None and "cannot be read" in hostinfo.why_not(None)
    root = fake_tree(tmp_path / "arm", ["processor\t: 0\nFeatures\t: fp asimd\n\n"])
    cpu = hostinfo.read_cpu(root, affinity={0})
    assert cpu is not None and cpu.ghz is None
    assert hostinfo.derive_peaks(cpu) is None and "no clock" in hostinfo.why_not(cpu)


# ---------------------------------------------------------------- the host-cpu profile


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Point hostinfo at a fake tree (built by the test) and keep user profiles out."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGEPOOL_PROFILE_PATH", raising=False)
    root = tmp_path / "root"
    monkeypatch.setattr(hostinfo, "ROOT", root)
    monkeypatch.setattr(hostinfo, "_affinity", lambda: {0, 1, 2, 3})
    return root


def test_host_cpu_profile_peaks_are_this_machines(host, cli):
    flags = f"{X86_FLAGS} fma avx avx2 avx512f avx512_vnni"
    fake_tree(host, [cpu_block(n, flags, core=n) for n in range(4)], {n: 3_500_000 for n in range(4)})
    p = profiles.resolve("host-cpu")
    # the profile runs 2 threads: 2 of the 4 cores, 3.5 GHz, 16 lanes x 2 FMA units; VNNI x4
    assert p.peak_gmacs_fp32 == pytest.approx(2 * 3.5 * 32) and p.peak_gmacs_int8 == pytest.approx(2 * 3.5 * 128)
    for key in ("peak_gmacs_fp32", "peak_gmacs_int8"):
        assert p.sources[key].startswith("derived: avx512f fma avx512_vnni, 2 cores (the profile's 2 threads; "
                                         "4 usable), 3.50 GHz (cpufreq cpuinfo_max_freq)")
    assert p.to_dict()["peak_gmacs_fp32"] == p.peak_gmacs_fp32
    res = cli("profiles", "show", "host-cpu")
    assert res.exit_code == 0 and "224" in res.stdout and "derived: avx512f" in res.stdout
    # the other profiles keep their files' numbers
    assert profiles.resolve("raspberry-pi-5").sources["peak_gmacs_fp32"].startswith(("datasheet", "estimate", "benchmark"))


def test_host_cpu_profile_falls_back_to_its_file_when_the_cpu_cannot_be_read(host):
    p = profiles.resolve("host-cpu")  # the fake root holds nothing
    assert (p.peak_gmacs_fp32, p.peak_gmacs_int8) == (80, 160)
    src = p.sources["peak_gmacs_fp32"]
    assert src.startswith("estimate: ") and "not derived: /proc/cpuinfo cannot be read" in src


def test_derived_peaks_only_for_a_local_profile(tmp_path, host):
    text = (profiles.builtin_dir() / "host-cpu.toml").read_text().replace('transport = "local"', 'transport = "ssh"')
    path = tmp_path / "remote-box.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=r"sources\.peak_gmacs_(int8|fp32): .*derived.* only .*transport \"local\""):
        profiles.load_profile(path)
    bad = text.replace('transport = "ssh"', 'transport = "local"').replace(
        'idle_power_w = "estimate:', 'idle_power_w = "derived:')
    path.write_text(bad)
    with pytest.raises(ProfileError, match=r"sources\.idle_power_w: .*only peak_gmacs_int8 and peak_gmacs_fp32"):
        profiles.load_profile(path)
