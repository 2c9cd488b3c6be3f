// tokenformer/model/copy_parameters.hpp: copy a model's parameters to another model, on any device.
//
// The way to move a model between the CPU and the GPU: build the same architecture on the target
// device (LanguageModel<Config, cuda> gpu(cpu_model.config(), cuda{})), then copy_parameters(gpu,
// cpu_model). Works between any two objects with for_each_parameter whose parameters match by name
// and shape, also between float and double models (values are converted).
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/tensor.hpp"

namespace tokenformer {

/// Copies every parameter value of `source` into the parameter of the same name of `destination`.
/// Throws shape_error if the two models' parameter lists or shapes differ. Gradients and optimizer
/// moments are not copied; frozen flags, frozen rows and learning-rate scales are copied.
template <class Destination, class Source>
void copy_parameters(Destination& destination, Source& source) {
  struct Entry {
    std::string name;
    Shape shape;
    std::vector<double> values;
    bool frozen;
    index_t frozen_rows;
    double lr_scale;
  };
  std::vector<Entry> entries;
  source.for_each_parameter([&](const std::string& name, auto& p) {
    using T = typename std::decay_t<decltype(p.value)>::value_type;
    std::vector<T> host(static_cast<std::size_t>(p.value.size()));
    p.value.copy_to_host(host.data());
    entries.push_back(
        {name, p.value.shape(), std::vector<double>(host.begin(), host.end()), p.frozen, p.frozen_rows, p.lr_scale});
  });
  std::size_t next = 0;
  destination.for_each_parameter([&](const std::string& name, auto& p) {
    using T = typename std::decay_t<decltype(p.value)>::value_type;
    if (next == entries.size())
      throw shape_error("copy_parameters: the destination has parameter '" + name + "' that the source lacks");
    const Entry& e = entries[next++];
    if (e.name != name) throw shape_error("copy_parameters: source parameter '" + e.name + "' meets '" + name + "'");
    expect_shape(p.value.shape(), e.shape, "copy_parameters: parameter '" + name + "'");
    const std::vector<T> host(e.values.begin(), e.values.end());
    p.value.copy_from_host(host.data());
    p.frozen = e.frozen;
    p.frozen_rows = e.frozen_rows;
    p.lr_scale = e.lr_scale;
  });
  if (next != entries.size())
    throw shape_error("copy_parameters: the source has parameter '" + entries[next].name +
                      "' that the destination lacks");
}

}  // namespace tokenformer
