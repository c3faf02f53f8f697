#pragma once
// Test cases that need something of the CPU: whether they can run is decided
// by the CPU probe (util/cpu.h), never by asking the code under test. A case
// that cannot run here is skipped by doctest (counted in its "skipped"), and
// the listener in main.cc prints it with its reason:
//
//   TEST_CASE("..." * CP_NEEDS(caliprox::cpu::features().avx512_bf16, "no AVX512-BF16 on this CPU"))
#include <doctest/doctest.h>

#define CP_NEEDS(can_run, reason) doctest::skip(!(can_run)) * doctest::description((can_run) ? "" : (reason))
