// Session planning on every configuration change: what each step's active
// kernel reads and writes, and the low-precision edges between int8 / bf16
// layers.
#include "engine/plain_session.h"

namespace caliprox {

// What each step's active kernel reads and writes under the current
// configuration. A lent residual is copied for kernels that cannot run in
// place. Low-precision edges: for every arena value, its readers that take
// codes (int8 or bf16) as input #0 are grouped by the codes they want; each
// group reads one codes buffer, written by the producer when it can write
// those codes (an int8 / bf16 layer) and the group is the value's only
// reader, else by the group's first reader, once (a single reader of a float
// producer just converts internally).
void PlainSession::plan_run() {
  edges_.clear();
  for (size_t k = 0; k < steps_.size(); ++k) {
    steps_[k].active = steps_[k].configured;  // no codes writer until chosen below
    io_[k].in_now = io_[k].in;
    io_[k].out_now = io_[k].out;
    io_[k].quantize_to = nullptr;
    io_[k].copy_residual = steps_[k].residual_lent && !steps_[k].active->residual_in_place();
    if (io_[k].copy_residual) {
      Step& st = steps_[k];
      if (st.residual_copy.type() != st.input_types[3])
        st.residual_copy = Tensor(st.input_types[3].dtype, st.input_types[3].shape);
      io_[k].in_now[3] = &st.residual_copy;
    }
  }
  if (lowp_edges_) plan_codes_edges();
}

// Low-precision edges (see plan_run). Observed nodes keep float values on
// all their edges: observers see and change floats.
void PlainSession::plan_codes_edges() {
  for (const auto& [value, readers] : readers_of_) {
    auto slot = values_.find(value);
    if (slot == values_.end() || slot->second.where != ValueSlot::Where::arena) continue;
    std::map<ActivationCodes, std::vector<size_t>> groups;
    size_t float_readers = 0;
    for (auto [k, i] : readers) {
      std::optional<ActivationCodes> c =
          i == 0 && !steps_[k].observed() ? steps_[k].active->input_codes() : std::nullopt;
      if (c) groups[*c].push_back(k);
      else ++float_readers;
    }
    for (const auto& [codes, group] : groups) {
      auto p = producer_of_.find(value);
      Kernel* writer = nullptr;
      if (float_readers == 0 && groups.size() == 1 && p != producer_of_.end() && steps_[p->second].outputs.size() == 1 &&
          !steps_[p->second].observed())
        writer = codes_kernel(steps_[p->second], codes);
      // The writer replaces the producer's kernel: it must read the
      // producer's own input the same way (the edges planned into it).
      if (writer && writer->input_codes() != steps_[p->second].active->input_codes()) writer = nullptr;
      if (!writer && group.size() == 1) continue;  // the reader converts it itself, as without edges
      auto [buf, fresh] = codes_buffers_.try_emplace({value, codes});
      if (fresh) buf->second = Tensor(codes.type, slot->second.type.shape);
      CodesEdge edge{value, codes, false, "", {}};
      if (writer) {
        steps_[p->second].active = writer;
        io_[p->second].out_now[0] = &buf->second;
        edge.producer_writes = true;
        edge.written_by = steps_[p->second].node.name;
      } else {
        io_[group.front()].quantize_to = &buf->second;
        edge.written_by = steps_[group.front()].node.name;
      }
      for (size_t k : group) {
        io_[k].in_now[0] = &buf->second;
        edge.readers.push_back(steps_[k].node.name);
      }
      edges_.push_back(std::move(edge));
    }
  }
}

}  // namespace caliprox
