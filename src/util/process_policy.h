#pragma once
// Process-wide settings every caliprox program applies the same way: the
// caliprox binary, the unit and conformance test binaries and the
// benchmarks, so that what the tests and benchmarks measure is what the tool
// does. Call apply_process_policy(argv) first thing in main(), before any
// thread, library call or output.
//
// Environment:
//   OMP_WAIT_POLICY  read. When unset, the process re-executes itself once
//                    with OMP_WAIT_POLICY=passive. Several OpenMP teams of
//                    different widths run one after the other (oneDNN
//                    primitives, the knob kernels, parallel tune workers);
//                    with the default active waiting, idle teams spin and
//                    steal the cores of the working one (measured: 10-40x
//                    slower alternating runs). Set it to anything to keep
//                    that value and run without re-executing.
//   GOMP_SPINCOUNT   set to 30000 together with the above, unless already
//                    set: a worker spins that long before sleeping, since a
//                    sleeping worker takes ~0.1 ms to wake.
//   CALIPROX_REEXEC  set to 1 in the re-executed process. When set, no
//                    re-execution happens: the guard against a loop, and a
//                    way to run with libgomp's defaults (set it and leave
//                    OMP_WAIT_POLICY unset).
//
// Why a re-execution: libgomp reads its settings when it is loaded, before
// main(), so setting them in main() would change nothing for this process.
// The process re-executes /proc/self/exe with the same arguments; if that
// fails (no /proc, or the binary runs under qemu-user, which cannot execute
// a foreign binary itself) it goes on with the settings it has.
#include <string>
#include <utility>
#include <vector>

namespace caliprox {

// The environment variables the policy would set, name -> value, given a
// lookup of the current environment (std::getenv's signature). Empty when
// the process runs as it is. apply_process_policy() acts on this; it is
// separate so the rules can be tested without re-executing.
using EnvLookup = const char* (*)(const char* name);
std::vector<std::pair<std::string, std::string>> process_policy_changes(EnvLookup lookup);

// Applies the policy: sets the variables above and re-executes the process
// (does not return) when process_policy_changes() asks for it; returns at
// once otherwise, or when re-executing failed. `argv` is main()'s.
void apply_process_policy(char** argv);

}  // namespace caliprox
