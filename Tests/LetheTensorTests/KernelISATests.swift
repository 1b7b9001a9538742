import Testing
@testable import LetheTensor

/// The choice of instruction set for Lethe's C kernels: the widest by default, `LETHE_ISA` naming
/// another, clear errors for a name that is no set or a set the CPU cannot run, and `with` restoring
/// the set in use before. (Every kernel is pinned to the Double path in each set by the kernel tests.)
@Suite struct KernelISATests {
    @Test func theDefaultIsTheWidestSetTheCPURuns() {
        #expect(KernelISA.supported.first == .portable)
        #expect(KernelISA.supported.last == KernelISA.best)
        #if arch(x86_64)
            // Every x86-64 CPU Lethe is measured on runs AVX2; the binary is no longer built for it.
            #expect(KernelISA.supported.contains(.avx2))
        #endif
    }

    @Test(arguments: KernelISA.supported)
    func theEnvironmentVariablePicksASet(isa: KernelISA) throws {
        try Numerics.exclusively {
            let before = Numerics.isa
            defer { try? Numerics.use(isa: before) }
            try Numerics.useISA(from: ["LETHE_ISA": isa.rawValue.uppercased()])
            #expect(Numerics.isa == isa)
            try Numerics.useISA(from: [:])  // unset: no change
            try Numerics.useISA(from: ["LETHE_ISA": ""])
            #expect(Numerics.isa == isa)
        }
    }

    @Test func aNameThatIsNoSetIsRefusedWithTheSets() {
        #expect(throws: KernelISA.Failure.unknown("sse9")) { try Numerics.useISA(from: ["LETHE_ISA": "sse9"]) }
        #expect(
            KernelISA.Failure.unknown("sse9").description
                == "LETHE_ISA=sse9: no such instruction set (portable, avx2, avx512)")
    }

    @Test func aSetTheCPUCannotRunIsRefused() throws {
        let best = KernelISA.best
        guard let wider = KernelISA.allCases.first(where: { !KernelISA.supported.contains($0) }) else {
            // This CPU runs every set: the refusal is checked through its description only.
            #expect(
                KernelISA.Failure.unsupported(.avx512, best: .avx2).description
                    == "LETHE_ISA=avx512: this CPU does not run avx512 (the widest it runs is avx2)")
            return
        }
        try Numerics.exclusively {
            let before = Numerics.isa
            #expect(throws: KernelISA.Failure.unsupported(wider, best: best)) { try Numerics.use(isa: wider) }
            #expect(Numerics.isa == before)
        }
    }

    @Test func withRestoresTheSetInUse() throws {
        try Numerics.exclusively {
            let before = Numerics.isa
            let inside = try Numerics.with(isa: .portable) { Numerics.isa }
            #expect(inside == .portable)
            #expect(Numerics.isa == before)
        }
    }
}

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
