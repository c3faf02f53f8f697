// The caliprox command line: parse into a settings struct, call one
// run_<subcommand>(), map the outcome to an exit code (DESIGN "CLI contract").
#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "app/common.h"
#include "app/distributed.h"
#include "app/settings.h"
#include "build_id.h"
#include "dist/cluster.h"
#include "util/cpu.h"
#include "util/log.h"
#include "util/process_policy.h"

using namespace caliprox;

namespace {

constexpr const char* kVersion = "0.1.0";

void add_common(CLI::App* cmd, CommonSettings& c, bool with_backend = true, bool with_out = true) {
  if (with_out) cmd->add_option("-o,--out", c.out_dir, "Output folder (default: runs/<experiment name>/)");
  cmd->add_option("--threads", c.threads, "Threads (overrides the target's)")->check(CLI::PositiveNumber);
  if (with_backend) cmd->add_option("--backend", c.backend, "Backend: onednn or reference (overrides the target's)");
  cmd->add_flag("--json", c.json, "Print one JSON summary object on stdout");
  auto* quiet = cmd->add_flag("-q,--quiet", c.quiet, "Only warnings and errors on stderr");
  cmd->add_flag("-v,--verbose", c.verbose,
                "Also debug details on stderr: each layer's kernel tuning (every candidate's time), the batch split")
      ->excludes(quiet);
}

// Subcommands that work on one network of an experiment that may have several.
void add_network(CLI::App* cmd, CommonSettings& c) {
  cmd->add_option("--network", c.network, "Which of the experiment's networks (needed when it has several)");
}

LogLevel log_level_of(const CommonSettings& c) {
  return c.quiet ? LogLevel::warning : c.verbose ? LogLevel::debug : LogLevel::info;
}

// "-i NAME=FILE.npy" or "-i FILE.npy" (for a model with one input).
std::pair<std::string, std::string> split_input_arg(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos) return {"", arg};
  return {arg.substr(0, eq), arg.substr(eq + 1)};
}

int exit_status(const Status& st) {
  if (st.ok()) return 0;
  fmt::print(stderr, "caliprox: {}{}\n", st.code() == Errc::interrupted ? "" : "error: ", st.message());
  return exit_code_for(st.code());
}

// What the ranks of an MPI job compare: the same caliprox build on the
// same command line.
std::string rank_identity(int argc, char** argv) {
  std::string id = fmt::format("caliprox {} ({})", kVersion, CALIPROX_BUILD_ID);
  for (int i = 1; i < argc; ++i) id += fmt::format(" '{}'", argv[i]);
  return id;
}

std::string version_text() {
  const std::string mpi = mpi_library_version();
  return fmt::format("caliprox {} ({})\nmpi: {}\ncpu: {}", kVersion, CALIPROX_BUILD_ID,
                     mpi.empty() ? "not built in (mpirun with several ranks is refused)" : mpi,
                     cpu::describe(cpu::features()));
}

// A worker rank's exit: quiet when rank 0 ended the job (it reported why),
// else its own error, naming the rank.
int worker_exit(const Cluster& c, const Status& st) {
  if (st.ok() || c.ended()) return st.ok() ? 0 : exit_code_for(st.code());
  fmt::print(stderr, "caliprox: rank {} ({}): error: {}\n", c.rank(), c.host(c.rank()), st.message());
  return exit_code_for(st.code());
}

}  // namespace

int main(int argc, char** argv) {
  apply_process_policy(argv);  // may re-execute: before anything else
  CLI::App app{"caliprox: application-aware tuning of neural-network approximations"};
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  app.fallthrough();

  CheckSettings check;
  auto* check_cmd = app.add_subcommand("check", "Validate an experiment file and everything it references");
  check_cmd->add_option("experiment", check.experiment_path, "Experiment YAML file")->required();
  add_common(check_cmd, check.common);

  InferSettings infer;
  std::vector<std::string> input_args;
  auto* infer_cmd = app.add_subcommand("infer", "Run one ONNX model on .npy inputs and write .npy outputs");
  infer_cmd->add_option("model", infer.model_path, "ONNX model file")->required();
  infer_cmd->add_option("-i,--input", input_args, "Input as NAME=FILE.npy (or FILE.npy for a one-input model); repeatable")
      ->required();
  infer_cmd->add_option("--repeat", infer.repeat, "Timed runs after the warm-up; prints latency statistics")
      ->check(CLI::NonNegativeNumber);
  infer_cmd->add_option("--warmup", infer.warmup, "Untimed runs before the timed ones")->check(CLI::NonNegativeNumber);
  infer_cmd->add_option("--config", infer.config_path, "Knob configuration JSON (node name -> knob); default exact");
  add_common(infer_cmd, infer.common);

  EvalSettings eval;
  auto* eval_cmd = app.add_subcommand("eval", "QoS and latency of the exact network on a dataset split");
  eval_cmd->add_option("experiment", eval.experiment_path, "Experiment YAML file")->required();
  eval_cmd->add_option("--split", eval.split, "Dataset split to evaluate (default: test)");
  eval_cmd->add_option("--config", eval.configs,
                       "Knob configuration JSON (node name -> knob); default exact. With --application: "
                       "[NAME=]FILE per network, repeatable");
  eval_cmd->add_flag("--application", eval.application,
                     "Run the application's own check in network mode (exit 0 valid, 3 invalid, 1 uncertain)");
  eval_cmd->add_option("--seed", eval.seed, "With --application: seed of the runs' seeds (default 1)");
  auto* eval_repeats = eval_cmd->add_option("--repeats", eval.repeats,
                                            "With --application: runs (overrides application.repeats)")
                          ->check(CLI::PositiveNumber);
  eval_cmd->add_flag("--finetune", eval.finetune,
                     "Fine-tune the configuration's reshaped network with the network's finetune hook first; "
                     "report the split's QoS before and after")
      ->needs(eval_cmd->get_option("--config"))
      ->excludes(eval_cmd->get_option("--application"))
      ->excludes(eval_repeats);
  add_common(eval_cmd, eval.common);
  add_network(eval_cmd, eval.common);

  ExportSettings exp_settings;
  auto* export_cmd = app.add_subcommand("export", "Write the network under a knob configuration as a standard ONNX file");
  export_cmd->add_option("experiment", exp_settings.experiment_path, "Experiment YAML file")->required();
  export_cmd->add_option("--config", exp_settings.config_path, "Knob configuration JSON to export")->required();
  export_cmd->add_option("-o,--output", exp_settings.output, "The .onnx file to write")->required();
  export_cmd->add_option("--split", exp_settings.split, "Split whose first batch checks the written file (default: test)");
  export_cmd->add_option("--tolerance", exp_settings.tolerance,
                         "Largest difference that check allows, relative to the output's scale (default 1e-4)")
      ->check(CLI::PositiveNumber);
  export_cmd->add_flag("--finetune", exp_settings.finetune,
                       "Fine-tune the reshaped network with the network's finetune hook before writing it; report "
                       "the split's QoS before and after");
  add_common(export_cmd, exp_settings.common, true, false);
  add_network(export_cmd, exp_settings.common);

  KnobsSettings knobs;
  auto* knobs_cmd = app.add_subcommand("knobs", "List the knob catalogue, or the knobs each layer of a network takes");
  knobs_cmd->add_option("experiment", knobs.experiment_path, "Experiment YAML file (omit for the catalogue)");
  add_common(knobs_cmd, knobs.common);
  add_network(knobs_cmd, knobs.common);

  TuneSettings tune;
  auto* tune_cmd = app.add_subcommand("tune", "Search per-layer knob configurations; write the Pareto frontier");
  tune_cmd->add_option("experiment", tune.experiment_path, "Experiment YAML file")->required();
  tune_cmd->add_option("--iterations", tune.iterations, "Search budget in evaluations (overrides tune.iterations)")
      ->check(CLI::NonNegativeNumber);
  tune_cmd->add_option("--time", tune.time_s, "Search budget in seconds (overrides tune.time_limit)")
      ->check(CLI::NonNegativeNumber);
  tune_cmd->add_option("--strategy", tune.strategy, "random, greedy or evolutionary (overrides tune.strategy)");
  tune_cmd->add_option("--qos-mode", tune.qos_mode, "empirical, p1 or p2 (overrides tune.qos_mode)");
  tune_cmd->add_option("--seed", tune.seed,
                       "Seed of the search's random numbers (overrides tune.seed; recorded in records.jsonl's header)");
  tune_cmd->add_option("--jobs", tune.jobs, "Parallel workers, each with its own sessions (results do not depend on it)")
      ->check(CLI::PositiveNumber);
  tune_cmd->add_option("--export-hpvm", tune.export_hpvm, "Also write the frontier in ApproxTuner's confs.txt layout");
  auto* guide_opt = tune_cmd->add_option("--guide", tune.guide,
                                         "Tune every network the budgets.json (from calibrate) names together, "
                                         "guided by it: the application runs only where it cannot decide");
  auto* joint_opt = tune_cmd->add_flag("--joint", tune.joint,
                                       "Tune every network together against the QoS goal; the application checks "
                                       "every finalist");
  guide_opt->excludes(joint_opt);
  tune_cmd->add_option("--margin", tune.margin,
                       "With --guide: how far inside (or outside) the region a candidate must sit to be accepted "
                       "(discarded) without the application, as a fraction of each axis's range (default 0.05)")
      ->needs(guide_opt);
  tune_cmd->add_option("--checks", tune.checks,
                       "With --guide or --joint: application checks at most (default 10 guided, tune.finalists "
                       "joint)")
      ->check(CLI::PositiveNumber);
  tune_cmd->add_option("--goal", tune.goal, "Override qos.goal: a loss (0.02) or a percentage of the exact value (1%)");
  add_common(tune_cmd, tune.common);
  add_network(tune_cmd, tune.common);

  ProfileSettings profile;
  auto* profile_cmd = app.add_subcommand("profile", "Measure per-(layer, knob) and whole-configuration latency");
  profile_cmd->add_option("experiment", profile.experiment_path, "Experiment YAML file")->required();
  profile_cmd->add_option("--configs", profile.configs_path,
                          "Configurations to measure: a pareto.json, a JSON list of configurations, or one");
  profile_cmd->add_option("--batch", profile.batch, "Batch size (overrides the target's batch_sizes)")
      ->check(CLI::PositiveNumber);
  profile_cmd->add_option("--warmup", profile.warmup, "Warm-up rounds (default 2)")->check(CLI::NonNegativeNumber);
  profile_cmd->add_option("--min-rounds", profile.min_rounds, "Rounds at least (default 10)")
      ->check(CLI::PositiveNumber);
  profile_cmd->add_option("--min-seconds", profile.min_seconds, "Seconds at least (default 1)")
      ->check(CLI::NonNegativeNumber);
  add_common(profile_cmd, profile.common);
  add_network(profile_cmd, profile.common);

  CalibrateSettings calibrate;
  auto* calibrate_cmd = app.add_subcommand(
      "calibrate", "Find the error-model region in which the application meets its goal; write budgets.json");
  calibrate_cmd->add_option("args", calibrate.args,
                            "The experiment YAML file; with --query, NAME=VALUE for each parameter");
  calibrate_cmd->add_option("--query", calibrate.query_path,
                            "Answer inside / outside / uncertain for a point of this budgets.json (exit 0 / 3 / 1)");
  calibrate_cmd->add_option("--errors", calibrate.errors_paths,
                            "With --query: place each candidate of this errors.json (caliprox inject) in the region "
                            "instead of NAME=VALUE; repeatable, one per network (exit 3 if any is outside, else 1 if "
                            "any is uncertain, else 0)")
      ->needs("--query");
  calibrate_cmd->add_option("--points", calibrate.points, "Budget in points (overrides calibrate.points)")
      ->check(CLI::PositiveNumber);
  add_common(calibrate_cmd, calibrate.common);

  InjectSettings inject;
  auto* inject_cmd = app.add_subcommand(
      "inject", "Measure the errors approximations put on the network's outputs; write errors.json");
  inject_cmd->add_option("experiment", inject.experiment_path, "Experiment YAML file")->required();
  inject_cmd->add_option("--config", inject.configs, "A knob configuration to measure (repeatable)");
  inject_cmd->add_option("--pareto", inject.pareto_path, "Measure every configuration of this pareto.json");
  inject_cmd->add_flag("--each-knob", inject.each_knob,
                       "Measure each knob on each layer alone (the default without --config or --pareto)");
  inject_cmd->add_option("--split", inject.split, "Dataset split (default: calibrate)");
  add_common(inject_cmd, inject.common);
  add_network(inject_cmd, inject.common);

  AdaptSimSettings adapt;
  auto* adapt_cmd = app.add_subcommand(
      "adapt-sim", "Measure a frontier's levels and simulate run-time adaptation strategies; write adaptation.json");
  adapt_cmd->add_option("experiment", adapt.experiment_path, "Experiment YAML file")->required();
  adapt_cmd->add_option("--pareto", adapt.pareto_path, "The frontier (default: runs/<name>/pareto.json)");
  adapt_cmd->add_option("--strategy", adapt.strategy,
                        "The strategy adaptation.json names: static, naive, state or confidence (overrides adapt.strategy)");
  adapt_cmd->add_flag("--all-levels", adapt.all_levels,
                      "Keep every level of the frontier (no thinning on the speedups measured at batch 1)");
  adapt_cmd->add_option("--min-rounds", adapt.min_rounds, "Latency: rounds at least (default 20)")
      ->check(CLI::PositiveNumber);
  adapt_cmd->add_option("--min-seconds", adapt.min_seconds, "Latency: seconds at least (default 1)")
      ->check(CLI::NonNegativeNumber);
  add_common(adapt_cmd, adapt.common);
  add_network(adapt_cmd, adapt.common);

  ServeSettings serve;
  auto* serve_cmd = app.add_subcommand("serve", "Serve the network under test to an application over a Unix socket");
  serve_cmd->add_option("experiment", serve.experiment_path, "Experiment YAML file")->required();
  serve_cmd->add_option("--socket", serve.socket_path, "Unix socket path to listen on")->required();
  serve_cmd->add_option("--config", serve.configs,
                        "[NAME=]FILE: serve this knob configuration for network NAME (default: exact); repeatable");
  serve_cmd->add_option("--error-model", serve.error_models,
                        "[NAME=]JSON: serve network NAME's exact outputs perturbed by this error model "
                        "(man caliprox-experiment); repeatable");
  serve_cmd->add_option("--adaptation", serve.adaptations,
                        "[NAME=]adaptation.json (caliprox adapt-sim): switch network NAME's level per request; "
                        "replies carry \"level\"");
  serve_cmd->add_option("--strategy", serve.strategy,
                        "With --adaptation: static, naive, state or confidence (default: the table's)");
  serve_cmd->add_option("--seed", serve.seed, "Seed of the error model's draws (default 1)");
  serve_cmd->add_option("--max-requests", serve.max_requests, "Stop after this many answered requests (0: at a signal)")
      ->check(CLI::NonNegativeNumber);
  add_common(serve_cmd, serve.common);

  DeploySettings deploy;
  auto* deploy_cmd = app.add_subcommand(
      "deploy", "Run a subcommand on a remote target (ssh, adb or a local folder) and bring its artifacts home");
  deploy_cmd->add_option("experiment", deploy.experiment_path, "Experiment YAML file")->required();
  deploy_cmd->add_option("--target", deploy.target, "The experiment's target to run on")->required();
  deploy_cmd->add_option("command", deploy.command,
                         "After --: check, knobs, eval, profile, tune, adapt-sim or infer, and its arguments");
  deploy_cmd->add_option("-o,--out", deploy.common.out_dir,
                         "Where the artifacts land (default runs/<experiment>/<target>/)");
  deploy_cmd->add_flag("-q,--quiet", deploy.common.quiet, "Only errors on stderr");
  deploy_cmd->add_flag("-v,--verbose", deploy.common.verbose, "Also debug details");

  ReportSettings report;
  report.version = kVersion;
  auto* report_cmd = app.add_subcommand("report", "Draw a run folder's artifacts into one self-contained HTML page");
  report_cmd
      ->add_option("run_dir", report.run_dir,
                   "Run folder (the -o folder of tune, profile, calibrate, inject, adapt-sim)")
      ->required();
  report_cmd->add_option("-o,--output", report.output, "The page to write (default RUN_DIR/report.html)");
  report_cmd->add_flag(
      "--no-plots", [&report](int64_t) { report.plots = false; },
      "Tables only, without the inlined plotting libraries (a page about 770 KiB smaller)");
  report_cmd->add_flag("--json", report.common.json, "Print one JSON summary object on stdout");
  auto* report_quiet = report_cmd->add_flag("-q,--quiet", report.common.quiet, "Only warnings and errors on stderr");
  report_cmd->add_flag("-v,--verbose", report.common.verbose, "Also debug details on stderr")->excludes(report_quiet);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error (DESIGN exit codes)
  }

  // A misspelt ISA cap must not silently mean "no cap".
  if (!cpu::features().cap_error.empty()) {
    fmt::print(stderr, "caliprox: error: {}\n", cpu::features().cap_error);
    return 2;
  }
  install_interrupt_handler();
  // Under mpirun: rank 0 runs the subcommand, the others answer its tasks.
  std::unique_ptr<Cluster> mpi;
  Status st = enter_cluster(&argc, &argv, app.get_subcommands().front()->get_name(), rank_identity(argc, argv), mpi);
  const bool worker = mpi && mpi->rank() != 0;
  if (!st.ok()) {
    if (mpi && !worker) mpi->finish(st);
    if (worker) return worker_exit(*mpi, st);
    if (launch_of_environment().rank != 0) return exit_code_for(st.code());  // rank 0 says it
    return exit_status(st);
  }
  try {
    if (*check_cmd) {
      set_log_level(log_level_of(check.common));
      st = run_check(check);
    } else if (*infer_cmd) {
      set_log_level(log_level_of(infer.common));
      for (const auto& a : input_args) infer.inputs.push_back(split_input_arg(a));
      st = run_infer(infer);
    } else if (*eval_cmd) {
      set_log_level(log_level_of(eval.common));
      st = run_eval(eval);
    } else if (*export_cmd) {
      set_log_level(log_level_of(exp_settings.common));
      st = run_export(exp_settings);
    } else if (*knobs_cmd) {
      set_log_level(log_level_of(knobs.common));
      st = run_knobs(knobs);
    } else if (*tune_cmd) {
      set_log_level(worker ? LogLevel::warning : log_level_of(tune.common));
      if (worker) st = run_tune_worker(tune);
      else st = tune.guide || tune.joint ? run_tune_joint(tune) : run_tune(tune);
    } else if (*profile_cmd) {
      set_log_level(log_level_of(profile.common));
      st = run_profile(profile);
    } else if (*serve_cmd) {
      set_log_level(log_level_of(serve.common));
      st = run_serve(serve);
    } else if (*adapt_cmd) {
      set_log_level(log_level_of(adapt.common));
      st = run_adapt_sim(adapt);
    } else if (*inject_cmd) {
      set_log_level(worker ? LogLevel::warning : log_level_of(inject.common));
      st = worker ? run_inject_worker(inject) : run_inject(inject);
    } else if (*deploy_cmd) {
      set_log_level(log_level_of(deploy.common));
      st = run_deploy(deploy);
    } else if (*report_cmd) {
      set_log_level(log_level_of(report.common));
      st = run_report(report);
    } else if (*calibrate_cmd) {
      set_log_level(worker ? LogLevel::warning : log_level_of(calibrate.common));
      st = worker ? run_calibrate_worker(calibrate) : run_calibrate(calibrate);
      if (mpi && !worker) mpi->finish(st);
      if (st.ok() && !worker) return calibrate.query_exit;
    }
  } catch (const std::bad_alloc&) {
    st = runtime_error("out of memory");
  } catch (const std::exception& e) {
    // Library exceptions are caught inside the modules; reaching here is a bug.
    st = runtime_error("internal error: {}", e.what());
  }
  if (mpi && !worker) mpi->finish(st);
  if (worker) return worker_exit(*mpi, st);
  return exit_status(st);
}
