#pragma once
// The server behind `caliprox serve` and behind every application run that
// gets a socket in its request (man caliprox-serve documents the frames
// byte by byte): the experiment's networks, each exact, under a knob
// configuration, or with its exact outputs perturbed by an error model.
// One connection at a time, any number of requests per connection; a bad
// request gets an error frame and the server stays up.
//
// A host keeps its evaluators (models, datasets, sessions) between runs:
// set() changes what each network serves, start() listens on a fresh
// socket in a background thread, stop() closes it. `caliprox serve` runs
// the same loop in the foreground with serve().
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "adapt/controller.h"
#include "eval/evaluator.h"
#include "qos/error_model.h"
#include "util/status.h"

namespace caliprox {

// What one network serves.
struct ServedState {
  std::optional<KnobConfig> config;        // the approximation (exact when absent)
  std::optional<ErrorModel> error_model;   // perturb the exact outputs instead
};

class ServeHost {
 public:
  // Loads every network of `exp` on `backend` with `threads` each.
  static Result<std::unique_ptr<ServeHost>> create(const Experiment& exp, const std::string& backend, int threads);
  ~ServeHost();

  // What each network serves from now on (networks not named: exact), and
  // the seed of the error models' draws. invalid_input naming the network
  // for an unknown name or a configuration that does not apply.
  Status set(const std::map<std::string, ServedState>& states, uint64_t seed);

  // Network `name` switches levels per request as `kind` says over `table`
  // (adaptation.json of this network's model); replies then carry "level".
  // invalid_input when the table is of another model or a level's knobs do
  // not apply. Replaces what set() said for that network.
  Status set_adaptation(const std::string& name, std::shared_ptr<const AdaptationTable> table, AdaptStrategy kind,
                        const StrategyParams& params);
  // Level switches so far and the time they took, all networks: the first
  // switch to a level at a batch size prepares its kernels (first use);
  // later ones only reconfigure (steady). Read after the server stopped.
  struct SwitchTimes {
    struct Sum {
      int64_t count = 0;
      double seconds = 0;
      void add(double s) {
        ++count;
        seconds += s;
      }
      double mean_ms() const { return count ? 1000 * seconds / static_cast<double>(count) : 0.0; }
    };
    Sum first, steady;
  };
  const SwitchTimes& switch_times() const { return switch_times_; }

  // Binds `path` (refusing a path that exists and is not a stale socket)
  // and answers in a background thread until stop().
  Status start(const std::string& path);
  // Stops the thread, closes the socket and removes its file. Idempotent.
  void stop();

  // Foreground: binds `path` and answers until `done()` says so (looked at
  // between connections and every 200 ms) or max_requests (0: no limit)
  // have been answered; then removes the socket file.
  Status serve(const std::string& path, const std::function<bool()>& done, int64_t max_requests);

  int64_t served() const { return served_.load(); }
  const std::vector<std::string>& names() const { return names_; }

 private:
  struct Net;
  ServeHost() = default;
  void loop(int listener, const std::function<bool()>& done, int64_t max_requests);
  void connection(int fd, int64_t max_requests);

  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Net>> nets_;
  uint64_t seed_ = 1;
  std::atomic<int64_t> served_{0};
  SwitchTimes switch_times_;  // written by the serving thread only
  std::atomic<bool> stopping_{false};
  std::function<bool()> done_;  // the loop's stop condition, looked at while reading
  int listener_ = -1;
  std::string path_;
  std::thread thread_;
};

// A private folder for a run's socket (socket paths are short: under
// $TMPDIR or /tmp, never under a deep run folder); removed with its
// contents by the destructor.
class SocketDir {
 public:
  static Result<SocketDir> create();
  SocketDir(SocketDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  SocketDir& operator=(SocketDir&&) = delete;
  ~SocketDir();
  std::string socket(const std::string& name) const { return path_ + "/" + name; }

 private:
  explicit SocketDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace caliprox
