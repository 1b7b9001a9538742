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
