"""softdoca enforces what DOCA enforces where the glue could get bring-up wrong, per release
profile (-DSOFTDOCA_API=209|300|301|302|303): ports bound to probed devices and
representors, port ids per release, vnf pairs, switch managers and e-switches, the default
miss, mode-argument tokens.  sd_enforce.c (driver=none functions, no interfaces) is compiled
once per profile against softdoca's sources and prints what each call returned; its io mode
runs two af_packet devices on veths (root); and a snippet per release checks that only that
release's call forms compile."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOFTDOCA = os.path.join(os.path.dirname(os.path.dirname(HERE)), "dpdk_glue", "softdoca")
INCLUDES = ["-I" + os.path.join(SOFTDOCA, "include"), "-I" + SOFTDOCA]
PROFILES = ("209", "300", "301", "302", "303")

OK = "DOCA_SUCCESS"
INVALID = "DOCA_ERROR_INVALID_VALUE"
IN_USE = "DOCA_ERROR_IN_USE"
BAD_STATE = "DOCA_ERROR_BAD_STATE"
EXIST = "DOCA_ERROR_ALREADY_EXIST"
NOT_SUPPORTED = "DOCA_ERROR_NOT_SUPPORTED"
NOT_FOUND = "DOCA_ERROR_NOT_FOUND"
MISS_KERNEL, MISS_DROP, MISS_RSS = -1, -2, -5


def _pkg_config(*args):
    return subprocess.run(["pkg-config", *args, "libdpdk"], capture_output=True, text=True,
                          check=True).stdout.split()


def _sources():
    return sorted(os.path.join(SOFTDOCA, f) for f in os.listdir(SOFTDOCA) if f.endswith(".c"))


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    """sd_enforce built for every profile (the compilers run side by side)."""
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        pytest.fail("gcc and pkg-config are needed (scripts/install-deps.sh)")
    out = tmp_path_factory.mktemp("enforce")
    procs = {}
    for api in PROFILES:
        exe = str(out / ("sd_enforce" + api))
        argv = (["gcc", "-O0", "-g", "-std=gnu11", "-Wall", "-Werror", "-DSOFTDOCA_API=" + api] + INCLUDES
                + _pkg_config("--cflags") + [os.path.join(HERE, "sd_enforce.c")] + _sources()
                + _pkg_config("--libs") + ["-lrte_bus_vdev", "-lpthread", "-o", exe])
        procs[api] = (exe, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    built = {}
    for api, (exe, proc) in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, "profile %s:\n%s" % (api, err[-4000:])
        built[api] = exe
    return built


@pytest.fixture(scope="module")
def results(binaries, lab_prefix):
    """What sd_enforce printed, per profile."""
    got = {}
    for api, exe in binaries.items():
        prefix = "%s-enf%s" % (lab_prefix, api)
        try:
            proc = subprocess.run([exe, prefix], capture_output=True, text=True, timeout=60, check=False)
        finally:
            # the EAL's runtime directory, by its exact name
            shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
        assert proc.returncode == 0 and "ENFORCE DONE" in proc.stdout, (
            "profile %s rc=%s\n%s\n%s" % (api, proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:]))
        got[api] = json.loads(proc.stdout.split("\nENFORCE DONE")[0])
    return got


def _check(res, expected):
    wrong = {k: (res.get(k, "<missing>"), v) for k, v in expected.items() if res.get(k, "<missing>") != v}
    assert not wrong, "got != expected: %s" % wrong


@pytest.mark.root
@pytest.mark.parametrize("api", PROFILES)
def test_devices_and_probe(results, api):
    release = {"209": "2.9.0072", "300": "3.0.0058", "301": "3.1.0105", "302": "3.2.0118", "303": "3.3.0000"}
    _check(results[api], {
        "devices.register_twice": EXIST, "devices.register_unknown_parent": NOT_FOUND,
        "devices.rep_list_emulated": NOT_SUPPORTED, "devices.rep_list_all_n": 1,
        "devices.as_dev_before_probe": NOT_FOUND,
        "devices.probe_pci_in_devargs": INVALID, "devices.probe": OK, "devices.probe_twice": EXIST,
        # driver=none: the highest ethdev id DPDK does not use
        "devices.dpdk_port": 31, "devices.as_dev_same": 1,
        # open twice = one more reference; the last close ends the DPDK port
        "devices.open_twice_same": 1, "devices.close_1": OK, "devices.probed_after_close_1": 1,
        "devices.close_2": OK, "devices.probed_after_close_2": 0, "devices.close_3": BAD_STATE,
        "devices.runtime": release[api], "devices.runtime_is_string": 1,
    })


@pytest.mark.root
@pytest.mark.parametrize("api", PROFILES)
def test_port_start_rules(results, api):
    expected = {
        "start.unprobed": BAD_STATE,
        "start.neither": INVALID,       # neither set_dev nor set_dev_rep
        "start.dev0": OK,
        "start.dev0_again": IN_USE,     # a representor started as if it were its device
        "start.dev1": OK,
    }
    if api == "209":
        # the devargs are the port id and must be the device's DPDK port
        expected.update({"start.devargs_other_port": INVALID, "start.devargs_not_number": INVALID})
    else:
        expected.update({"start.no_port_id": INVALID, "start.id_taken": EXIST})
    if api >= "301":
        expected.update({"start.rep_before_probe": BAD_STATE, "start.both": INVALID, "start.rep": OK,
                         "start.rep_again": IN_USE, "start.close_dev_with_port": IN_USE})
    else:
        assert "start.rep" not in results[api]
    _check(results[api], expected)


@pytest.mark.root
@pytest.mark.parametrize("api", PROFILES)
def test_vnf_pairs(results, api):
    _check(results[api], {
        "vnf.switch_get_vnf_null": 1,
        "vnf.basic_fwd_unpaired": INVALID, "vnf.ctl_fwd_unpaired": INVALID, "vnf.ctl_fwd_self": OK,
        "vnf.pair_self": INVALID, "vnf.pair": OK, "vnf.pair_again": OK, "vnf.pair_other": IN_USE,
        "vnf.basic_fwd_paired": OK, "vnf.ctl_fwd_paired": OK,
        # a pair is one direction
        "vnf.ctl_fwd_reverse_unpaired": INVALID, "vnf.pair_reverse": OK, "vnf.ctl_fwd_reverse_paired": OK,
    })


@pytest.mark.root
@pytest.mark.parametrize("api", PROFILES)
def test_switch_managers_and_eswitches(results, api):
    expected = {
        "switch.switch_get_pf1_is_pf0": 1, "switch.switch_get_pf2_is_pf2": 1,
        "switch.switch_get_null_is_pf0": 1,
        "switch.pair": NOT_SUPPORTED,
        "switch.pipe_on_non_manager": INVALID, "switch.second_root": EXIST,
        "switch.basic_fwd_other_esw": INVALID, "switch.basic_fwd_same_esw": OK,  # multiport e-switch
        "switch.ctl_fwd_other_esw": INVALID, "switch.ctl_match_other_esw": INVALID,
        "switch.ctl_fwd_same_esw": OK,
        "switch.classify_pf1_miss": MISS_RSS,
        "switch.stop_manager_first": IN_USE, "switch.stop_pf1": OK, "switch.stop_manager_last": OK,
        "switch.stop_pf2": OK,
    }
    if api >= "301":
        expected.update({"switch.rep_before_manager": BAD_STATE, "switch.rep": OK,
                         "switch.switch_get_rep_is_pf0": 1, "switch.ctl_fwd_rep": OK, "switch.stop_rep": OK})
    _check(results[api], expected)


@pytest.mark.root
@pytest.mark.parametrize("api", PROFILES)
def test_miss_path_and_mode_args(results, api):
    expected = {
        "miss.mode_bogus": INVALID, "miss.mode_both": INVALID, "miss.mode_none": INVALID,
        "miss.mode_hairpinq": OK,
        "miss.mode_isolated": INVALID if api == "303" else OK,
        "miss.mode_cpds": OK,  # in the samples of every release
        # no isolated, no kernel default miss: to the RSS queues nobody polls
        "miss.rss_classify": MISS_RSS, "miss.rss_miss_pkts": 1, "miss.rss_miss_rss_pkts": 1,
    }
    if api <= "302":
        expected["miss.isolated_classify"] = MISS_KERNEL
    else:
        assert "miss.isolated_classify" not in results[api]
    if api >= "302":
        expected.update({
            "miss.update_kernel": OK, "miss.kernel_classify": MISS_KERNEL,
            "miss.update_drop": OK, "miss.drop_classify": MISS_DROP, "miss.update_bad": INVALID,
            "miss.after_miss_pkts": 3, "miss.after_miss_rss_pkts": 1, "miss.after_drop_pkts": 1,
            # on a switch manager: the whole e-switch
            "miss.esw_before_classify": MISS_RSS, "miss.esw_update_kernel": OK,
            "miss.esw_member_classify": MISS_KERNEL, "miss.esw_manager_classify": MISS_KERNEL,
        })
    _check(results[api], expected)


@pytest.mark.root
@pytest.mark.parametrize("api", PROFILES)
def test_capacity(results, api):
    """The hardware's limits (softdoca_set_capacity, from dpu.eswitch.capacity): past them a
    pipe create or an entry add fails with DOCA_ERROR_DRIVER, whatever nr_entries says;
    a destroyed pipe gives its place back; 0 lifts the limits."""
    driver = "DOCA_ERROR_DRIVER"
    _check(results[api], {
        "capacity.root": OK, "capacity.basic": OK, "capacity.pipe_past": driver,
        "capacity.pipe_after_destroy": OK,
        "capacity.entry_1": OK, "capacity.entry_2": OK, "capacity.entry_past": driver,
        "capacity.entry_unlimited": OK, "capacity.pipe_unlimited": OK,
    })


@pytest.mark.root
@pytest.mark.parametrize("api", [a for a in PROFILES if a >= "300"])
def test_actions_memory(results, api):
    """DOCA's default actions memory is zero: a MAC-rewriting entry needs
    doca_flow_port_cfg_set_actions_mem_size, 128 bytes an entry, given back on removal."""
    _check(results[api], {
        "actions.size_not_pow2": INVALID, "actions.size_too_small": INVALID,
        "actions.default_zero": "DOCA_ERROR_NO_MEMORY",
        "actions.first": OK, "actions.second": OK, "actions.third_no_room": "DOCA_ERROR_NO_MEMORY",
        "actions.after_remove": OK, "actions.after_flush": OK,
    })


@pytest.mark.root
@pytest.mark.parametrize("api", ["302", "303"])
def test_probe_owns_the_io_vdevs(binaries, netns, lab_prefix, api):
    """Two af_packet devices: probing opens each one's wire and representor vdevs (its DPDK
    port id is the wire's ethdev id), flow ports borrow them (they outlive doca_flow_destroy),
    closing the device closes them; a paired forward, an RSS default miss (lost) and a
    kernel default miss (to the representor iface) on real frames."""
    from xenoflow_ovs.lab import netns as nl

    ns = netns("e")
    for a in ("w0", "r0", "w1", "r1"):
        nl.add_veth(a, a + "p", ns=ns, peer_ns=ns)
        nl.prepare_link(a, ns=ns)
        nl.prepare_link(a + "p", ns=ns)
    prefix = "%s-enfio%s" % (lab_prefix, api)
    try:
        argv = [binaries[api], prefix, "io", "w0", "r0", "w1", "r1", "w0p", "w1p"]
        proc = subprocess.run(nl.ns_argv(ns, argv), capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    assert proc.returncode == 0 and "ENFORCE DONE" in proc.stdout, proc.stderr[-3000:]
    _check(json.loads(proc.stdout.split("\nENFORCE DONE")[0]), {
        "io.ethdevs_before_probe": 0, "io.ethdevs_probed": 4, "io.p0_dpdk_port": 0, "io.p1_dpdk_port": 2,
        "io.p0_is_its_wire_vdev": 1,
        "io.p0_wire_rx": 40, "io.p0_miss_rss": 20, "io.p0_rep_tx": 0,
        "io.p1_wire_tx": 20, "io.p1_miss": 20, "io.p1_miss_rss": 0, "io.p1_rep_tx": 20,
        "io.ethdevs_after_flow_destroy": 4, "io.ethdevs_after_close_p0": 2, "io.reprobe": OK,
        "io.ethdevs_reprobed": 4, "io.ethdevs_after_unregister": 0,
    })


# --- only each release's call forms exist ------------------------------------------------

SNIPPETS = {
    "add_31": "doca_flow_pipe_add_entry(0, pipe, &m, &a, NULL, NULL, 0, NULL, &e);",
    "add_32": "doca_flow_pipe_add_entry(0, pipe, &m, 0, &a, NULL, NULL, 0, NULL, &e);",
    "add_33": "doca_flow_pipe_basic_add_entry(0, pipe, &m, 0, &a, NULL, NULL, 0, NULL, &e);",
    "set_dev_rep": "doca_flow_port_cfg_set_dev_rep(pcfg, rep);",
    "set_port_id": "doca_flow_port_cfg_set_port_id(pcfg, 0);",
    "probe_with_reps": "doca_dpdk_port_probe_with_representors(dev, \"\", &rep, 1);",
    "default_miss": "doca_flow_port_update_default_miss(port, DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL, false);",
}
# snippet -> the profiles it compiles under (every other profile must refuse it)
COMPILES_UNDER = {
    "add_31": {"209", "300", "301"},
    "add_32": {"302"},
    "add_33": {"303"},
    "set_dev_rep": {"301", "302", "303"},
    "set_port_id": {"300", "301", "302", "303"},
    "probe_with_reps": {"301", "302", "303"},
    "default_miss": {"302", "303"},
}

PRELUDE = """#include <doca_dpdk.h>
#include <doca_flow.h>
void f(struct doca_flow_pipe *pipe, struct doca_flow_port_cfg *pcfg, struct doca_dev *dev,
       struct doca_dev_rep *rep, struct doca_flow_port *port);
void f(struct doca_flow_pipe *pipe, struct doca_flow_port_cfg *pcfg, struct doca_dev *dev,
       struct doca_dev_rep *rep, struct doca_flow_port *port)
{
	struct doca_flow_match m = {0};
	struct doca_flow_actions a = {0};
	struct doca_flow_pipe_entry *e;
	(void)pipe; (void)pcfg; (void)dev; (void)rep; (void)port; (void)m; (void)a; (void)e;
	%s
}
"""


@pytest.mark.parametrize("api", PROFILES)
def test_only_the_release_forms_compile(api, tmp_path):
    wrong = {}
    for name, call in SNIPPETS.items():
        src = tmp_path / (name + ".c")
        src.write_text(PRELUDE % call)
        proc = subprocess.run(["gcc", "-fsyntax-only", "-std=gnu11", "-Wall", "-Werror",
                               "-Werror=implicit-function-declaration", "-DSOFTDOCA_API=" + api] + INCLUDES
                              + [str(src)], capture_output=True, text=True, check=False)
        compiled = proc.returncode == 0
        if compiled != (api in COMPILES_UNDER[name]):
            wrong[name] = "compiled" if compiled else proc.stderr[-400:]
    assert not wrong, wrong
