import Testing
@testable import LetheTensor

/// The CPU generation a benchmark names beside its numbers.
@Suite struct CPUGenerationTests {
    @Test(arguments: [
        ("AuthenticAMD", 25, 0x01, "Zen 3"), ("AuthenticAMD", 25, 0x11, "Zen 4"), ("AuthenticAMD", 25, 0x61, "Zen 4"),
        ("AuthenticAMD", 26, 0x02, "Zen 5"), ("GenuineIntel", 6, 106, "Ice Lake-SP"),
        ("GenuineIntel", 6, 0x8f, "Sapphire Rapids"), ("GenuineIntel", 6, 0x55, "Skylake-SP/Cascade Lake/Cooper Lake"),
    ])
    func namesTheGeneration(vendor: String, family: Int, model: Int, name: String) {
        #expect(CPUInfo.generation(vendor: vendor, family: family, model: model) == name)
    }

    @Test func anUnlistedModelHasNoName() {
        #expect(CPUInfo.generation(vendor: "GenuineIntel", family: 6, model: 0x3c) == nil)
        #expect(CPUInfo.generation(vendor: "AuthenticAMD", family: nil, model: nil) == nil)
        #expect(CPUInfo.generation(vendor: "HygonGenuine", family: 24, model: 1) == nil)
    }
}

/// `BLAS.recordingProducts`, behind `lethe bench --products`: every product of the work by its
/// row-major shape, with its calls.
@Suite struct ProductRecordingTests {
    @Test func aLinearLayerRecordsItsForwardAndBothGradientProducts() {
        // Shapes no other test uses: recording is process-wide and tests run side by side.
        var rng = Philox(seed: 3)
        let x = Tensor<Float>.randn([37, 19], rng: &rng, requiresGrad: true)
        let w = Tensor<Float>.randn([23, 19], rng: &rng, requiresGrad: true)
        let shapes = BLAS.recordingProducts {
            Numerics.exclusively {
                Numerics.configure(threads: 1, mode: .fast)
                x.linear(w).sum().backward()
            }
        }
        let forward = BLAS.Product(m: 37, n: 23, k: 19, transA: false, transB: true)
        let inputGradient = BLAS.Product(m: 37, n: 19, k: 23, transA: false, transB: false)
        let weightGradient = BLAS.Product(m: 23, n: 19, k: 37, transA: true, transB: false)
        for shape in [forward, inputGradient, weightGradient] {
            #expect(shapes[shape]?.calls == 1, "\(shape): \(shapes)")
            #expect((shapes[shape]?.seconds ?? -1) >= 0)
        }
        #expect(forward.description == "37x23x19 NT" && forward.flops == 2 * 37 * 23 * 19)
        // Outside a recording nothing is kept: the next recording starts empty.
        x.linear(w).sum().backward()
        let later = BLAS.recordingProducts {}
        #expect(later[forward] == nil)
    }
}
