#include "dist/cluster.h"

#include <unistd.h>

#include <cstdlib>
#include <exception>

#include <fmt/format.h>

namespace caliprox {

namespace {

Cluster* g_cluster = nullptr;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end && *end == '\0' ? static_cast<int>(n) : fallback;
}

}  // namespace

Launch launch_of_environment() {
  Launch l;
  for (const auto& [size_var, rank_var] :
       {std::pair{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"}, std::pair{"PMI_SIZE", "PMI_RANK"}}) {
    const int size = env_int(size_var, 0);
    if (size < 1) continue;
    l.by_mpirun = true;
    l.size = size;
    l.rank = env_int(rank_var, 0);
    break;
  }
  return l;
}

std::string this_host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

Cluster* cluster() { return g_cluster; }
void set_cluster(Cluster* c) { g_cluster = c; }

nlohmann::json status_json(const Status& st) {
  return {{"code", static_cast<int>(st.code())}, {"message", st.message()}};
}

Status status_from_json(const nlohmann::json& j) {
  const int code = j.value("code", static_cast<int>(Errc::runtime));
  if (code == 0) return {};
  return Status(static_cast<Errc>(code), j.value("message", std::string("(no message)")));
}

Status Cluster::broadcast(const std::string& text) {
  for (int r = 1; r < size(); ++r) CP_TRY(send(r, kHello, text));
  return {};
}

Result<std::string> Cluster::from_root(int tag) {
  int got = 0;
  CP_ASSIGN_OR_RETURN(std::string bytes, receive(0, -1, &got));
  if (got == kDone) {
    ended_ = true;
    nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
    end_status_ = status_from_json(j.is_object() ? j : nlohmann::json::object());
    if (end_status_.ok()) return Status(Errc::runtime, "rank 0 ended the job before this rank's part started");
    return end_status_;
  }
  if (got != tag) return runtime_error("rank {}: expected message {} from rank 0, got {}", rank_, tag, got);
  return bytes;
}

Result<std::vector<std::string>> Cluster::collect(int tag) {
  std::vector<std::string> all(static_cast<size_t>(size()));
  for (int r = 1; r < size(); ++r) {
    CP_ASSIGN_OR_RETURN(all[static_cast<size_t>(r)], receive(r, tag));
  }
  return all;
}

Result<nlohmann::json> Cluster::call(int to, const nlohmann::json& task) {
  CP_TRY(send(to, kTask, task.dump()));
  CP_ASSIGN_OR_RETURN(std::string reply, receive(to, kReply));
  nlohmann::json j = nlohmann::json::parse(reply, nullptr, false);
  if (!j.is_object()) return runtime_error("rank {} ({}): unreadable reply to a task", to, host(to));
  if (j.contains("error")) {
    const Status st = status_from_json(j["error"]);
    return Status(st.code(), fmt::format("rank {} ({}): {}", to, host(to), st.message()));
  }
  return std::move(j["result"]);
}

Status Cluster::serve(const TaskHandler& handler) {
  for (;;) {
    Result<std::string> msg = from_root(kTask);
    if (!msg.ok()) return ended_ ? end_status_ : msg.status();
    nlohmann::json task = nlohmann::json::parse(*msg, nullptr, false);
    nlohmann::json reply;
    if (task.is_discarded()) {
      reply = {{"error", status_json(runtime_error("unreadable task"))}};
    } else {
      // A task this rank cannot read is answered as an error, not a crash.
      Result<nlohmann::json> r = runtime_error("unanswered task");
      try {
        r = handler(task);
      } catch (const std::exception& e) {
        r = runtime_error("internal error on a task {}: {}", task.dump(), e.what());
      }
      reply = r.ok() ? nlohmann::json{{"result", std::move(*r)}} : nlohmann::json{{"error", status_json(r.status())}};
    }
    CP_TRY(send(0, kReply, reply.dump()));
  }
}

void Cluster::finish(const Status& st) {
  std::lock_guard lock(finish_mu_);
  if (finished_ || rank_ != 0) return;
  finished_ = true;
  const std::string text = status_json(st).dump();
  for (int r = 1; r < size(); ++r) (void)send(r, kDone, text);
}

}  // namespace caliprox
