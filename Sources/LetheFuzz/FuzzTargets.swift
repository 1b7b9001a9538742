import LetheData
import LetheJSON
import LetheSpec
import LetheTensor

/// The readers of untrusted bytes, each as a fuzz target: any input must come back as a value or a
/// typed error, never a trap, a hang or a wild allocation. `lethe-fuzz` runs them under libFuzzer
/// (`make fuzz`), and `LetheFuzzTests` replays the committed corpus (`Fuzz/corpus/<target>/`) in every
/// test run.
public enum FuzzTargets {
    public struct Target: Sendable {
        public let name: String
        public let run: @Sendable ([UInt8]) -> Void
    }

    /// Bytes larger than this are not tried (every real input is far smaller; libFuzzer's inputs too).
    static let maxInput = 1 << 20

    public static let all: [Target] = [
        Target(name: "yaml") { bytes in
            _ = try? YAMLLoader.loadStream(bytes, file: "fuzz.yaml")
            if let doc = try? SpecDocument.parse(bytes, path: "fuzz.yaml") { _ = doc.schemaDiagnostics() }
        },
        Target(name: "json") { bytes in
            if let value = try? JSONParser.parse(bytes, file: "fuzz.json") { _ = try? CanonicalJSON.string(value) }
            _ = try? JSONParser.parseStream(bytes)
        },
        Target(name: "safetensors") { bytes in
            guard let file = try? Safetensors.read(bytes) else { return }
            for t in file.tensors { _ = try? t.entry.values(as: Float.self) }
        },
        Target(name: "idx") { bytes in
            var data = bytes
            if data.starts(with: [0x1F, 0x8B]), let inflated = try? Codecs.gunzip(data, path: "fuzz") {
                data = inflated
            }
            _ = try? IDX.parse(data, path: "fuzz.idx")
        },
        Target(name: "npy") { bytes in
            guard let array = try? NumPy.parseNPY(bytes, path: "fuzz.npy") else { return }
            _ = array.values()
        },
        Target(name: "npz") { bytes in
            guard let arrays = try? NumPy.parseNPZ(bytes, path: "fuzz.npz") else { return }
            for a in arrays.values { _ = a.values() }
        },
        Target(name: "png") { bytes in
            _ = try? Codecs.decodePNG(bytes, path: "fuzz.png")
        },
    ]

    public static func named(_ name: String) -> Target? { all.first { $0.name == name } }

    /// Runs `target` on `bytes` (skipping oversized inputs).
    public static func run(_ target: Target, _ bytes: [UInt8]) {
        guard bytes.count <= maxInput else { return }
        target.run(bytes)
    }
}
