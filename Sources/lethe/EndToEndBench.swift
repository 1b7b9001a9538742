import Foundation
import LetheJSON
import LetheTensor

/// `lethe bench --end-to-end`: a short unlearning run per model family, whole (process start, data,
/// model, steps, evaluation, files), beside bench/torch/bench_run.py doing the same work, each in
/// its own process so wall time and peak memory are theirs alone.
extension Bench {
    struct ProcessResult {
        var seconds: Double
        var output: String
        var status: Int32
    }

    func runProcess(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        let t0 = DispatchTime.now().uptimeNanoseconds
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return ProcessResult(
            seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9,
            output: String(decoding: data, as: UTF8.self),
            status: p.terminationStatus)
    }

    func wholeRuns() throws {
        let lethe = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let executable =
            FileManager.default.isExecutableFile(atPath: lethe) ? lethe : Bundle.main.executablePath ?? lethe
        let hasTorch = FileManager.default.isExecutableFile(atPath: torchPython)
        print("lethe bench --end-to-end: \(threads) thread(s), \(mode) mode; whole runs, each in its own process")
        print(
            "model           steps   Lethe s   PyTorch s   PyTorch/Lethe   Lethe MiB   PyTorch MiB   memory Lethe/PyTorch"
        )
        for (arch, defaultSteps) in [("mae", 20), ("vq_autoencoder", 20), ("mage", 20), ("diffusion", 5)] {
            if let model, !Bench.sameModel(model, arch) { continue }
            let steps = runSteps ?? defaultSteps
            let dir = NSTemporaryDirectory() + "lethe-bench-\(arch)-\(ProcessInfo.processInfo.processIdentifier)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let common = "output: {dir: \(dir)/runs}\nnumerics: {mode: \(mode.rawValue)}\n"
            // The work bench/torch/bench_run.py does: unlearn on the task's mask, evaluate one mask
            // without bootstrap intervals.
            let sameWork = "masks: [{mask: center_crop, ratio: 0.25}], bootstrap: 0"
            // MAGE pretrains in two stages, the transformer's naming the tokenizer's.
            let stage = arch == "mage" ? ", stage: transformer" : ""
            let origin = arch == "mage" ? ", pretrain: tok.yaml" : ""
            try """
            version: 1
            kind: pretrain
            model: {architecture: mage}
            train: {steps: 1, batch_size: 8, log_every: 1000, stage: tokenizer}
            evaluate: {test_per_class: 1, \(sameWork)}
            \(common)
            """.write(toFile: dir + "/tok.yaml", atomically: true, encoding: .utf8)
            try """
            version: 1
            kind: pretrain
            model: {architecture: \(arch)\(origin)}
            train: {steps: 1, batch_size: 8, log_every: 1000\(stage)}
            evaluate: {test_per_class: 1, \(sameWork)}
            \(common)
            """.write(toFile: dir + "/pre.yaml", atomically: true, encoding: .utf8)
            try """
            version: 1
            kind: unlearn
            data: {forget: {classes: [5, 7, 9]}, retain: {classes: [0, 1, 2, 3]}}
            task: {mask: center_crop, ratio: 0.25}
            model: {architecture: \(arch), pretrain: pre.yaml}
            unlearn: {method: ours, alpha: 0.25, mask: {kind: task}}
            train: {steps: \(steps), batch_size: 32, forget_batch_size: 32, log_every: 1000, optimizer: {name: adam, lr: 1.0e-4}}
            evaluate: {metrics: [psnr], test_per_class: 1, \(sameWork)}
            \(common)
            """.write(toFile: dir + "/un.yaml", atomically: true, encoding: .utf8)
            let pre = try runProcess(executable, ["run", dir + "/pre.yaml", "--threads", String(threads)])
            guard pre.status == 0 else { throw RunFailure(message: "the pretrain stage failed:\n\(pre.output)") }
            let run = try runProcess(
                executable, ["run", dir + "/un.yaml", "--threads", String(threads), "--print-resources"])
            guard run.status == 0 else { throw RunFailure(message: "the unlearning run failed:\n\(run.output)") }
            let letheMiB = run.output.split(separator: "\n").last { $0.hasPrefix("resources:") }
                .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            var line = arch.padding(16) + String(steps).padding(6) + String(format: "%9.1f", run.seconds)
            if hasTorch {
                let torch = try runProcess(
                    torchPython,
                    [
                        "bench/torch/bench_run.py", "--model", arch, "--steps", String(steps), "--threads",
                        String(threads),
                    ])
                let json = torch.output.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }.last
                let torchMiB = json?["peak_rss_mib"]?.doubleValue
                if torch.status == 0, let torchMiB, let letheMiB {
                    line += String(
                        format: "   %9.1f   %13.2f   %9.0f   %11.0f   %20.2f", torch.seconds,
                        torch.seconds / run.seconds, letheMiB, torchMiB, letheMiB / torchMiB)
                } else {
                    line += "   PyTorch run failed (exit \(torch.status))"
                }
            } else {
                line += "           —               —   " + (letheMiB.map { String(format: "%9.0f", $0) } ?? "—")
            }
            print(line)
        }
        print(
            hasTorch
                ? "Ratios >= 1 for time mean Lethe is faster; memory ratios <= 1 mean Lethe needs no more than PyTorch."
                : "PyTorch reference: not measured (bench/torch/setup.sh creates \(torchPython)).")
    }

    struct RunFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}

/// The process's peak resident memory (VmHWM) in MiB.
func peakResidentMiB() -> Double? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Double($0) })
    else { return nil }
    return kib / 1024
}
