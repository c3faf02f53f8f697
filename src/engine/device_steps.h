#pragma once
// Internal to the engine: keeping values on an accelerator between the nodes
// its backend runs (backends/backend.h DeviceMemory). While placing nodes the
// executor names every value the device holds "<value>@dev" and inserts a
// transfer step where a value crosses between host and device: an upload
// before the first device reader of a host value, a download before the first
// host reader (or graph output) of a device value. Each crossing happens once
// per run, whatever the number of readers. Knob kernels a device node has to
// run on the host are wrapped so the node still reads and writes device
// tensors (HostOnDevice); their transfers count with the others.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/plain_session.h"

namespace caliprox {

inline constexpr const char* kUploadOp = "DeviceUpload";
inline constexpr const char* kDownloadOp = "DeviceDownload";

// Placement's view of where values live (used by PlainSession::place_nodes).
class DeviceResidency {
 public:
  DeviceResidency(DeviceMemory& device, std::map<std::string, TensorType>& types, std::vector<Step>& steps,
                  TransferStats& stats)
      : device_(device), types_(types), steps_(steps), stats_(stats) {}

  // The name under which a device node reads `v` (uploading a host value once).
  std::string for_device_reader(const std::string& v);
  // Makes `v` readable on the host (downloading a device value once).
  void for_host_reader(const std::string& v);
  // The name a device node writes its output `v` under.
  std::string device_output(const std::string& v);
  // Every value that lives on the device (the memory plan's device arena).
  const std::set<std::string>& device_values() const { return device_values_; }

 private:
  Step transfer_step(const std::string& from, const std::string& to, bool upload);

  DeviceMemory& device_;
  std::map<std::string, TensorType>& types_;
  std::vector<Step>& steps_;
  TransferStats& stats_;
  std::map<std::string, std::string> device_name_;  // value -> its name on the device
  std::set<std::string> host_missing_;              // device values not downloaded yet
  std::set<std::string> device_values_;
};

// A host kernel run for a device node: downloads the node's device inputs
// into host scratch tensors, runs, uploads the outputs.
std::unique_ptr<Kernel> run_on_host_for_device(std::unique_ptr<Kernel> inner, DeviceMemory& device,
                                               const std::vector<TensorType>& input_types,
                                               const std::vector<const Tensor*>& constants,
                                               const std::vector<TensorType>& output_types, TransferStats& stats);

// Host copies of a device node's tensors for its observers (engine/observer.h):
// downloaded before the observers see them, the outputs uploaded again after
// (observers may change them).
class ObservedDeviceTensors {
 public:
  Result<std::span<const Tensor* const>> inputs(DeviceMemory& device, std::span<const Tensor* const> in,
                                                TransferStats& stats);
  Result<std::span<Tensor* const>> outputs(DeviceMemory& device, std::span<Tensor* const> out, TransferStats& stats);
  Status upload_outputs(DeviceMemory& device, std::span<Tensor* const> out, TransferStats& stats);

 private:
  // `to` = `from`, with each device tensor replaced by its download into `scratch`.
  template <typename T>
  static Status fetch_all(DeviceMemory& device, std::span<T* const> from, std::vector<std::unique_ptr<Tensor>>& scratch,
                          std::vector<T*>& to, TransferStats& stats);
  std::vector<std::unique_ptr<Tensor>> in_scratch_, out_scratch_;
  std::vector<const Tensor*> in_;
  std::vector<Tensor*> out_;
};

}  // namespace caliprox
