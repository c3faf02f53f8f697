#include "eval/served_app.h"

namespace caliprox {

Result<std::unique_ptr<ServeHost>> ServedApplication::borrow() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto host = std::move(idle_.back());
      idle_.pop_back();
      return host;
    }
  }
  return ServeHost::create(exp_, backend_, threads_);  // outside the lock: loading takes a while
}

void ServedApplication::give_back(std::unique_ptr<ServeHost> host) {
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(host));
}

int64_t ServedApplication::served() const {
  std::lock_guard lock(mu_);
  return served_done_;
}

Result<AppRun> ServedApplication::run(const AppSpec& app, nlohmann::json request,
                                      const std::map<std::string, ServedState>& states, uint64_t seed,
                                      const std::string& work_dir, const std::string& tag) {
  CP_ASSIGN_OR_RETURN(std::unique_ptr<ServeHost> host, borrow());
  struct Return {  // the host goes back to the pool however the run ends
    ServedApplication& pool;
    std::unique_ptr<ServeHost>& host;
    ~Return() {
      host->stop();
      pool.give_back(std::move(host));
    }
  } back{*this, host};
  CP_TRY(host->set(states, seed));
  CP_ASSIGN_OR_RETURN(SocketDir dir, SocketDir::create());
  const std::string socket = dir.socket("serve.sock");
  const int64_t before = host->served();
  CP_TRY(host->start(socket));
  request["serve"] = socket;
  CP_ASSIGN_OR_RETURN(AppRun run, run_application(app, request, work_dir, tag));
  host->stop();
  run.request["serve"] = true;
  std::lock_guard lock(mu_);
  served_done_ += host->served() - before;
  return run;
}

}  // namespace caliprox
