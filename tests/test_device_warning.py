"""Chapter 0 warns when a GPU is expected but absent (a CUDA plugin with no GPU, or full mode on the CPU)."""

from csil_lite.book import device_warning


def test_no_warning_for_a_cpu_preview_or_a_gpu():
    assert device_warning(["cpu"], preview=True, cuda_plugin=False) is None
    assert device_warning(["gpu"], preview=False, cuda_plugin=True) is None
    assert device_warning(["cuda"], preview=False, cuda_plugin=True) is None


def test_warns_for_a_cuda_build_without_a_gpu_and_for_full_mode_on_the_cpu():
    assert "CUDA build" in device_warning(["cpu"], preview=True, cuda_plugin=True)
    assert "full mode" in device_warning(["cpu"], preview=False, cuda_plugin=False)


def test_this_process_gets_an_answer():
    # this machine: no CUDA plugin, a CPU; preview by default
    assert device_warning(preview=True, cuda_plugin=False) is None
