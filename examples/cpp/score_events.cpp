// score_events: score the events of an emulsion-dl scan file (HDF5, format_version 1) with an
// exported NEWSnet ensemble (ONNX, `python -m emulsion_core export`), using only ONNX Runtime's
// C++ API and the HDF5 C library. The preprocessing is the one the export's JSON sidecar lists:
// order the 8 polarisation images by polariser angle, divide by camera_max, subtract each image's
// median, append polarisation 0 as a 9th image, add a channel axis.
//
//   score_events newsnet.onnx scan.h5 [max_events]
//
// prints one line per event: event_id and the ensemble's log-odds (carbon against background),
// the score the sidecar's cut applies to.
#include <hdf5.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

double read_scalar_attr(hid_t file, const char* name) {
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  if (attr < 0) throw std::runtime_error(std::string("missing attribute ") + name);
  double value = 0;
  H5Aread(attr, H5T_NATIVE_DOUBLE, &value);
  H5Aclose(attr);
  return value;
}

std::vector<double> read_array_attr(hid_t file, const char* name) {
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  if (attr < 0) throw std::runtime_error(std::string("missing attribute ") + name);
  hid_t space = H5Aget_space(attr);
  std::vector<double> values(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  H5Aread(attr, H5T_NATIVE_DOUBLE, values.data());
  H5Sclose(space);
  H5Aclose(attr);
  return values;
}

// numpy.median: the mean of the two middle values for an even count
float median(std::vector<float> v) {
  const size_t n = v.size(), mid = n / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  float hi = v[mid];
  if (n % 2) return hi;
  float lo = *std::max_element(v.begin(), v.begin() + mid);
  return 0.5f * (lo + hi);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s model.onnx scan.h5 [max_events]\n", argv[0]);
    return 2;
  }
  try {
    hid_t file = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) throw std::runtime_error(std::string("cannot open ") + argv[2]);
    const float camera_max = static_cast<float>(read_scalar_attr(file, "camera_max"));
    const std::vector<double> angles = read_array_attr(file, "polarisation_deg");

    hid_t images = H5Dopen(file, "images", H5P_DEFAULT);
    hid_t space = H5Dget_space(images);
    hsize_t dims[4];
    if (H5Sget_simple_extent_ndims(space) != 4) throw std::runtime_error("images: expected (N, P, H, W)");
    H5Sget_simple_extent_dims(space, dims, nullptr);
    size_t n = dims[0];
    const size_t p = dims[1], h = dims[2], w = dims[3], hw = h * w;
    if (argc > 3) n = std::min(n, static_cast<size_t>(std::stoul(argv[3])));
    if (p != 8 || angles.size() != 8) throw std::runtime_error("expected 8 polarisation images per event");
    std::vector<uint16_t> counts(n * p * hw);  // uint8 or uint16 on disk: HDF5 converts
    hsize_t start[4] = {0, 0, 0, 0}, count[4] = {n, p, h, w};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    hid_t memspace = H5Screate_simple(4, count, nullptr);
    H5Dread(images, H5T_NATIVE_UINT16, memspace, space, H5P_DEFAULT, counts.data());

    // event_id from the compound events table
    hid_t events = H5Dopen(file, "events", H5P_DEFAULT);
    hid_t id_type = H5Tcreate(H5T_COMPOUND, sizeof(int64_t));
    H5Tinsert(id_type, "event_id", 0, H5T_NATIVE_INT64);
    hid_t ev_space = H5Dget_space(events);
    hsize_t ev_start[1] = {0}, ev_count[1] = {n};
    H5Sselect_hyperslab(ev_space, H5S_SELECT_SET, ev_start, nullptr, ev_count, nullptr);
    hid_t ev_mem = H5Screate_simple(1, ev_count, nullptr);
    std::vector<int64_t> event_id(n);
    H5Dread(events, id_type, ev_mem, ev_space, H5P_DEFAULT, event_id.data());

    // the sidecar's preprocessing
    std::vector<size_t> order(p);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return angles[a] < angles[b]; });
    const size_t steps = p + 1;
    std::vector<float> input(n * steps * hw);
    std::vector<float> image(hw);
    for (size_t e = 0; e < n; ++e) {
      for (size_t k = 0; k < p; ++k) {
        const uint16_t* src = &counts[(e * p + order[k]) * hw];
        for (size_t i = 0; i < hw; ++i) image[i] = static_cast<float>(src[i]) / camera_max;
        const float m = median(image);
        float* dst = &input[(e * steps + k) * hw];
        for (size_t i = 0; i < hw; ++i) dst[i] = image[i] - m;
      }
      std::copy_n(&input[e * steps * hw], hw, &input[(e * steps + p) * hw]);  // polarisation 0 again
    }

    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "score_events");
    Ort::SessionOptions options;
    Ort::Session session(env, argv[1], options);
    Ort::AllocatorWithDefaultOptions allocator;
    const std::string input_name = session.GetInputNameAllocated(0, allocator).get();
    const char* input_names[] = {input_name.c_str()};
    const char* output_names[] = {"log_odds"};
    Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    const size_t batch = 64;
    for (size_t a = 0; a < n; a += batch) {
      const size_t b = std::min(n, a + batch);
      const int64_t shape[5] = {static_cast<int64_t>(b - a), static_cast<int64_t>(steps), static_cast<int64_t>(h),
                                static_cast<int64_t>(w), 1};
      Ort::Value x = Ort::Value::CreateTensor<float>(memory, &input[a * steps * hw], (b - a) * steps * hw, shape, 5);
      auto out = session.Run(Ort::RunOptions{nullptr}, input_names, &x, 1, output_names, 1);
      const float* log_odds = out[0].GetTensorData<float>();
      for (size_t e = a; e < b; ++e) std::printf("%lld %.6f\n", static_cast<long long>(event_id[e]), log_odds[e - a]);
    }
    H5Sclose(ev_mem); H5Sclose(ev_space); H5Tclose(id_type); H5Dclose(events);
    H5Sclose(memspace); H5Sclose(space); H5Dclose(images); H5Fclose(file);
  } catch (const std::exception& err) {
    std::fprintf(stderr, "score_events: %s\n", err.what());
    return 1;
  }
  return 0;
}
