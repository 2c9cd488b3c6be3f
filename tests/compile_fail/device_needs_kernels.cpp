// Must not compile: a device tag without kernels; the message names the first missing kernel.
#include <type_traits>

#include "tokenformer/core/presets.hpp"
#include "tokenformer/model/language_model.hpp"

struct my_accelerator {};
template <>
struct tokenformer::is_device<my_accelerator> : std::true_type {};

static_assert(tokenformer::kernels::check_device<my_accelerator, float>());
