// Values on the device between device nodes, and the transfers around them
// (engine/device_steps.h).
#include "engine/device_steps.h"

namespace caliprox {

namespace {

void count(TransferStats& stats, const Tensor& t, bool upload) {
  (upload ? stats.uploads : stats.downloads) += 1;
  (upload ? stats.bytes_up : stats.bytes_down) += static_cast<int64_t>(t.nbytes());
}

Status upload(DeviceMemory& device, const Tensor& host, Tensor& dev, TransferStats& stats) {
  count(stats, host, true);
  return device.upload(host, dev);
}

Status download(DeviceMemory& device, const Tensor& dev, Tensor& host, TransferStats& stats) {
  count(stats, host, false);
  return device.download(dev, host);
}

// A transfer step's kernel: one tensor, host -> device or device -> host.
class TransferKernel final : public Kernel {
 public:
  TransferKernel(DeviceMemory& device, bool up, TransferStats& stats) : device_(device), up_(up), stats_(stats) {}
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    return up_ ? upload(device_, *inputs[0], *outputs[0], stats_) : download(device_, *inputs[0], *outputs[0], stats_);
  }

 private:
  DeviceMemory& device_;
  bool up_;
  TransferStats& stats_;
};

// See run_on_host_for_device().
class HostOnDevice final : public Kernel {
 public:
  HostOnDevice(std::unique_ptr<Kernel> inner, DeviceMemory& device, const std::vector<TensorType>& input_types,
               const std::vector<const Tensor*>& constants, const std::vector<TensorType>& output_types,
               TransferStats& stats)
      : inner_(std::move(inner)), device_(device), stats_(stats) {
    for (size_t i = 0; i < input_types.size(); ++i) {
      const bool moved = constants[i] == nullptr && input_types[i].dtype != DType::undefined;
      in_scratch_.push_back(moved ? std::make_unique<Tensor>(input_types[i].dtype, input_types[i].shape) : nullptr);
    }
    for (const auto& t : output_types)
      out_scratch_.push_back(t.dtype != DType::undefined ? std::make_unique<Tensor>(t.dtype, t.shape) : nullptr);
    ins_.resize(input_types.size());
    outs_.resize(output_types.size());
  }

  // The residual is read from its own download, whatever buffer it shares.
  bool residual_in_place() const override { return true; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    for (size_t i = 0; i < inputs.size(); ++i) {
      ins_[i] = inputs[i];
      if (inputs[i] && in_scratch_[i] && inputs[i]->on_device()) {
        CP_TRY(download(device_, *inputs[i], *in_scratch_[i], stats_));
        ins_[i] = in_scratch_[i].get();
      }
    }
    for (size_t i = 0; i < outputs.size(); ++i) outs_[i] = outputs[i] ? out_scratch_[i].get() : nullptr;
    CP_TRY(inner_->run(ins_, outs_));
    for (size_t i = 0; i < outputs.size(); ++i)
      if (outputs[i]) CP_TRY(upload(device_, *out_scratch_[i], *outputs[i], stats_));
    return {};
  }

 private:
  std::unique_ptr<Kernel> inner_;
  DeviceMemory& device_;
  TransferStats& stats_;
  std::vector<std::unique_ptr<Tensor>> in_scratch_, out_scratch_;
  std::vector<const Tensor*> ins_;
  std::vector<Tensor*> outs_;
};

}  // namespace

Step DeviceResidency::transfer_step(const std::string& from, const std::string& to, bool up) {
  Step step;
  step.kind = StepKind::transfer;
  step.node.name = to;
  step.node.op_type = up ? kUploadOp : kDownloadOp;
  step.node.inputs = {from};
  step.node.outputs = {to};
  step.inputs = step.node.inputs;
  step.outputs = step.node.outputs;
  step.kernel = std::make_unique<TransferKernel>(device_, up, stats_);
  step.backend = kEngineBackend;
  return step;
}

std::string DeviceResidency::for_device_reader(const std::string& v) {
  if (auto it = device_name_.find(v); it != device_name_.end()) return it->second;
  const std::string dev = v + "@dev";
  types_[dev] = types_.at(v);
  steps_.push_back(transfer_step(v, dev, true));
  device_name_[v] = dev;
  device_values_.insert(dev);
  return dev;
}

void DeviceResidency::for_host_reader(const std::string& v) {
  if (!host_missing_.erase(v)) return;
  steps_.push_back(transfer_step(device_name_.at(v), v, false));
}

std::string DeviceResidency::device_output(const std::string& v) {
  const std::string dev = v + "@dev";
  types_[dev] = types_.at(v);
  device_name_[v] = dev;
  device_values_.insert(dev);
  host_missing_.insert(v);
  return dev;
}

std::unique_ptr<Kernel> run_on_host_for_device(std::unique_ptr<Kernel> inner, DeviceMemory& device,
                                               const std::vector<TensorType>& input_types,
                                               const std::vector<const Tensor*>& constants,
                                               const std::vector<TensorType>& output_types, TransferStats& stats) {
  return std::make_unique<HostOnDevice>(std::move(inner), device, input_types, constants, output_types, stats);
}

template <typename T>
Status ObservedDeviceTensors::fetch_all(DeviceMemory& device, std::span<T* const> from,
                                        std::vector<std::unique_ptr<Tensor>>& scratch, std::vector<T*>& to,
                                        TransferStats& stats) {
  scratch.resize(from.size());
  to.assign(from.begin(), from.end());
  for (size_t i = 0; i < from.size(); ++i) {
    if (!from[i] || !from[i]->on_device()) continue;
    if (!scratch[i] || scratch[i]->type() != from[i]->type())
      scratch[i] = std::make_unique<Tensor>(from[i]->dtype(), from[i]->shape());
    CP_TRY(download(device, *from[i], *scratch[i], stats));
    to[i] = scratch[i].get();
  }
  return {};
}

Result<std::span<const Tensor* const>> ObservedDeviceTensors::inputs(DeviceMemory& device,
                                                                     std::span<const Tensor* const> in,
                                                                     TransferStats& stats) {
  CP_TRY(fetch_all(device, in, in_scratch_, in_, stats));
  return std::span<const Tensor* const>(in_);
}

Result<std::span<Tensor* const>> ObservedDeviceTensors::outputs(DeviceMemory& device, std::span<Tensor* const> out,
                                                                TransferStats& stats) {
  CP_TRY(fetch_all(device, out, out_scratch_, out_, stats));
  return std::span<Tensor* const>(out_);
}

Status ObservedDeviceTensors::upload_outputs(DeviceMemory& device, std::span<Tensor* const> out, TransferStats& stats) {
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i] && out[i]->on_device()) CP_TRY(upload(device, *out_scratch_[i], *out[i], stats));
  return {};
}

}  // namespace caliprox
