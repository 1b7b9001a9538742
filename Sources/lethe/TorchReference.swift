import Foundation
import LetheSpec

/// The PyTorch side of `lethe bench`: bench/torch/bench_steps.py in its own process, serving one
/// timing request at a time (`--serve`), so that the bench can alternate Lethe's measurements with
/// PyTorch's and both see the same machine. On a shared machine whose speed drifts by 10% or more
/// from one minute to the next, timing all of one side and then all of the other compares two
/// different machines; alternating rounds and keeping each side's best compares like with like.
final class TorchReference {
    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer = Data()
    /// PyTorch's version, from the server's first line.
    private(set) var version = ""
    /// The oneDNN build PyTorch's CPU convolutions run on, as PyTorch reports it.
    private(set) var oneDNN = ""

    /// Starts the server, or returns nil when the reference environment is absent or does not start
    /// (its error output goes to the terminal).
    init?(python: String, threads: Int) {
        guard FileManager.default.isExecutableFile(atPath: python) else { return nil }
        // A server that dies between two requests must not take the bench down with it: writing into
        // its closed pipe then fails with EPIPE (answered as "no time") instead of raising SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["bench/torch/bench_steps.py", "--serve", "--threads", String(threads)]
        process.standardInput = input
        process.standardOutput = output
        do { try process.run() } catch { return nil }
        guard let line = nextLine(), let value = try? JSONParser.parse(line), value["ready"] != nil,
            let version = value["torch"]?.stringValue
        else {
            process.terminate()
            return nil
        }
        self.version = version
        self.oneDNN = value["onednn"]?.stringValue ?? "unknown"
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    /// PyTorch's best time in ms over `seconds` for a reference step (`kind` "step", by model name),
    /// an op family ("op", by row name) or a convolution path ("conv", by its shape and path); nil
    /// when the server has gone.
    func time(_ kind: String, _ name: String, seconds: Double) -> Double? {
        guard process.isRunning else { return nil }
        do {
            try input.fileHandleForWriting.write(contentsOf: Data("\(kind)\t\(name)\t\(seconds)\n".utf8))
        } catch {
            return nil
        }
        guard let line = nextLine(), let value = try? JSONParser.parse(line) else { return nil }
        return value["ms"]?.doubleValue
    }

    private func nextLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { return nil }
            buffer.append(data)
        }
    }
}
