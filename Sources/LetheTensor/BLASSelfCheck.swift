import CBLAS
import CShims
import Foundation
import Synchronization

/// A start-up check of the BLAS kernel in use. Older OpenBLAS builds pick kernels that compute wrong
/// products on some newer CPUs (the development machines pin `OPENBLAS_CORETYPE` for that reason), so
/// before a run trains on products, a few single-precision products of awkward shapes, every
/// transposition, on one thread and on the run's threads, are compared with a Double reference. A pass
/// is cached per machine (CPU, kernel, library file, the `OPENBLAS_*` settings) in
/// `~/.cache/lethe/blas-check/`, so the check costs its milliseconds once.
public enum BLASSelfCheck {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The shapes (m, n, k) checked: square, odd, one row, long and thin, a k past the kernels' blocking.
    static let shapes = [(64, 64, 64), (37, 129, 23), (1, 300, 17), (257, 8, 513), (40, 24, 1100)]

    private static let verified = Mutex(Set<String>())

    /// Throws when a product of the kernel in use is wrong on one thread or on the numeric core's
    /// threads (`Numerics.configure` first); a pass is remembered for the process and cached for the
    /// machine.
    public static func verify() throws(Failure) {
        let threads = BLAS.threads
        let key = machineKey(threads: threads)
        if verified.withLock({ $0.contains(key) }) { return }
        let cache = cacheFile(key)
        if let cache, FileManager.default.fileExists(atPath: cache) {
            verified.withLock { _ = $0.insert(key) }
            return
        }
        for t in Set([1, threads]).sorted() {
            if let problem = check(serial: t == 1, gemm: openBLAS) {
                throw Failure(
                    description:
                        "the BLAS kernel in use (OpenBLAS \(Numerics.blasCore) on \(cpuName)) computes wrong products at \(t) thread\(t == 1 ? "" : "s"): \(problem). Older OpenBLAS builds pick kernels that are wrong on some newer CPUs; set OPENBLAS_CORETYPE to a kernel this CPU runs correctly (e.g. OPENBLAS_CORETYPE=Haswell) or update OpenBLAS"
                )
            }
        }
        verified.withLock { _ = $0.insert(key) }
        if let cache {
            try? FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: cache).deletingLastPathComponent().path, withIntermediateDirectories: true)
            try? Data("passed \(Numerics.blasCore)\n".utf8).write(to: URL(fileURLWithPath: cache), options: .atomic)
        }
    }

    /// A product C = op(A) op(B) of row-major operands: (transA, transB, m, n, k, a, b) -> c.
    public typealias Gemm = @Sendable (Bool, Bool, Int, Int, Int, [Float], [Float]) -> [Float]

    /// The first wrong product `gemm` computes over the checked shapes and transpositions, described;
    /// nil when every element is within 1e-4 of the Double reference, relative to the sum of the
    /// absolute terms (float32 rounding stays orders of magnitude below that; a wrong kernel does not).
    /// `serial`: the products run on one thread (else on the numeric core's threads).
    public static func check(serial: Bool, gemm: Gemm) -> String? {
        if serial { lethe_serial_blas_enter() }
        defer { if serial { lethe_serial_blas_leave() } }
        var rng = Philox(seed: 0xB1A5).split("blas-check")
        for (m, n, k) in shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = (0..<(m * k)).map { _ in Float(2 * rng.uniform() - 1) }
                let b = (0..<(k * n)).map { _ in Float(2 * rng.uniform() - 1) }
                let c = gemm(ta, tb, m, n, k, a, b)
                for i in 0..<m {
                    for j in 0..<n {
                        var exact = 0.0
                        var scale = 0.0
                        for p in 0..<k {
                            let x = Double(ta ? a[p * m + i] : a[i * k + p])
                            let y = Double(tb ? b[j * k + p] : b[p * n + j])
                            exact += x * y
                            scale += abs(x * y)
                        }
                        let error = abs(Double(c[i * n + j]) - exact)
                        if !(error <= 1e-4 * scale + 1e-6) {
                            return
                                "\(ta ? "Aᵀ" : "A")\(tb ? "Bᵀ" : "B") of \(m)x\(k) by \(k)x\(n): element (\(i), \(j)) is \(c[i * n + j]), the exact value \(exact)"
                        }
                    }
                }
            }
        }
        return nil
    }

    /// cblas_sgemm on the checked shapes.
    static let openBLAS: Gemm = { ta, tb, m, n, k, a, b in
        var c = [Float](repeating: 0, count: m * n)
        BLAS.call {
            cblas_sgemm(
                CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
                Int32(k), 1, a, Int32(ta ? m : k), b, Int32(tb ? k : n), 0, &c, Int32(n))
        }
        return c
    }

    static var cpuName: String {
        CPUInfo.field("model name") ?? "an unknown CPU"
    }

    /// What decides the kernel and its bits: CPU, its flags, the kernel name, OpenBLAS's settings, the
    /// library file, the thread count.
    static func machineKey(threads: Int) -> String {
        let env = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("OPENBLAS_") }.sorted {
            $0.key < $1.key
        }
        .map { "\($0.key)=\($0.value)" }
        var library = ""
        if let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8),
            let line = maps.split(separator: "\n").first(where: { $0.contains("libopenblas") }),
            let path = line.split(separator: " ").last.map(String.init),
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        {
            library = "\(path):\(attributes[.size] ?? 0):\(attributes[.modificationDate] ?? 0)"
        }
        let parts =
            [
                cpuName, CPUInfo.field("cpu family") ?? "", CPUInfo.field("model") ?? "", CPUInfo.field("flags") ?? "",
                Numerics.blasCore, library, "threads=\(threads)",
            ] + env
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in parts.joined(separator: "\n").utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }

    static func cacheFile(_ key: String) -> String? {
        let env = ProcessInfo.processInfo.environment
        guard let base = env["XDG_CACHE_HOME"] ?? env["HOME"].map({ $0 + "/.cache" }) else { return nil }
        return base + "/lethe/blas-check/" + key
    }
}

/// The first processor's fields in /proc/cpuinfo (`model name`, `cpu family`, `model`, `flags`, ...).
public enum CPUInfo {
    /// The value of the field named exactly `name`; nil when there is none (or no /proc/cpuinfo).
    public static func field(_ name: String) -> String? {
        (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first {
                $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) == name
            }?
            .split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// The core generation of an AMD or Intel server-class x86 CPU from its vendor, family and model
    /// numbers (what a benchmark's numbers need beside them); nil for a model not listed.
    /// AMD family 25: Zen 3, or Zen 4 for models 0x10-0x1f, 0x60-0x7f and 0xa0-0xaf; family 26: Zen 5.
    /// Intel family 6: Skylake-SP / Cascade Lake / Cooper Lake (0x55), Ice Lake-SP (0x6a, 0x6c),
    /// Sapphire Rapids (0x8f), Emerald Rapids (0xcf), Granite Rapids (0xad, 0xae), Sierra Forest (0xaf).
    public static func generation(vendor: String, family: Int?, model: Int?) -> String? {
        switch (vendor, family, model) {
        case ("AuthenticAMD", 23?, _): return "Zen/Zen 2"
        case ("AuthenticAMD", 25?, let m?):
            return (0x10...0x1f).contains(m) || (0x60...0x7f).contains(m) || (0xa0...0xaf).contains(m)
                ? "Zen 4" : "Zen 3"
        case ("AuthenticAMD", 26?, _): return "Zen 5"
        case ("GenuineIntel", 6?, 0x55?): return "Skylake-SP/Cascade Lake/Cooper Lake"
        case ("GenuineIntel", 6?, 0x6a?), ("GenuineIntel", 6?, 0x6c?): return "Ice Lake-SP"
        case ("GenuineIntel", 6?, 0x8f?): return "Sapphire Rapids"
        case ("GenuineIntel", 6?, 0xcf?): return "Emerald Rapids"
        case ("GenuineIntel", 6?, 0xad?), ("GenuineIntel", 6?, 0xae?): return "Granite Rapids"
        case ("GenuineIntel", 6?, 0xaf?): return "Sierra Forest"
        default: return nil
        }
    }
}
