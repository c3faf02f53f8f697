#pragma once
// Application runs that get a server (eval/serve_host.h): each run borrows
// a host from a pool (one per concurrent run, created on first need and
// kept, so models and sessions load once per job), sets what each network
// serves, starts it on a fresh socket named in the request's "serve", runs
// the application and stops the host. The run's recorded request has
// "serve": true in place of the socket path, which differs between runs.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/serve_host.h"
#include "qos/application.h"

namespace caliprox {

class ServedApplication {
 public:
  ServedApplication(const Experiment& exp, std::string backend, int threads)
      : exp_(exp), backend_(std::move(backend)), threads_(threads) {}

  // `request` with "serve" filled in for the run; errors: a host cannot be
  // created or configured, or the application cannot be started.
  Result<AppRun> run(const AppSpec& app, nlohmann::json request, const std::map<std::string, ServedState>& states,
                     uint64_t seed, const std::string& work_dir, const std::string& tag);

  // Requests answered by all hosts so far.
  int64_t served() const;

 private:
  Result<std::unique_ptr<ServeHost>> borrow();
  void give_back(std::unique_ptr<ServeHost> host);

  const Experiment& exp_;
  std::string backend_;
  int threads_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<ServeHost>> idle_;
  int64_t served_done_ = 0;  // by hosts while they were lent
};

}  // namespace caliprox
