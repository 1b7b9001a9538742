import Foundation
import Testing

/// Runs that are killed, preempted or stopped resume from their last saved training state and end bit
/// for bit where an uninterrupted run of the same spec ends (every hashed file of the run directory,
/// checkpoint and metrics included); the state never reaches a finished directory.
@Suite(.serialized) struct ResumeTests {
    static let mae =
        "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"

    static func pretrain(_ model: String = mae, steps: Int = 12, every: Int = 3, extra: String = "") -> String {
        """
        version: 1
        kind: pretrain
        seed: 3
        data: {dataset: fashion-mnist, per_class_limit: 8}
        model: \(model)
        train: {steps: \(steps), batch_size: 8, log_every: 100, checkpoint_every: \(every)\(extra)}
        evaluate: {test_per_class: 1, grid_samples: 2}
        """
    }

    static let unlearn = """
        version: 1
        kind: unlearn
        data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7]}, retain: {classes: [0, 1]}}
        model: {architecture: mae, pretrain: pre.yaml, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}
        unlearn: {method: ours, alpha: 0.5}
        train: {steps: 8, batch_size: 4, forget_batch_size: 4, log_every: 100, checkpoint_every: 2}
        evaluate: {test_per_class: 2, metrics: [psnr, ssim], grid_samples: 2}
        """

    static let mageTokenizer = pretrain(
        "{architecture: mage, mage: {tokenizer: {channels: [8, 16], codebook_size: 16, codebook_dim: 8}, width: 16, depth: 1, heads: 2, decoder_width: 16, decoder_depth: 1, decoder_heads: 2}}",
        steps: 56, every: 20, extra: ", stage: tokenizer, optimizer: {lr: 3.0e-3}")

    /// A folder holding `specs` (file name -> text).
    static func folder(_ specs: [String: String]) throws -> String {
        let folder = CLI.folder()
        for (name, text) in specs { try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8) }
        return folder
    }

    /// Runs `spec` in a fresh folder without interruption; returns the folder.
    static func uninterrupted(_ specs: [String: String], run spec: String) throws -> String {
        let folder = try folder(specs)
        let r = try CLI.run(["run", spec, "--threads", "1"], in: folder)
        #expect(r.code == 0, "\(r.err)")
        return folder
    }

    /// Every finished run directory of `a` and `b` holds the same files with the same bytes, but the
    /// wall-clock timings; no resume state is left in either.
    static func expectIdentical(_ a: String, _ b: String) throws {
        let runs = CLI.runDirectories(a)
        #expect(!runs.isEmpty)
        #expect(CLI.runDirectories(b) == runs)
        let fm = FileManager.default
        for run in runs {
            let files = try fm.contentsOfDirectory(atPath: a + "/runs/" + run).sorted()
            #expect(try fm.contentsOfDirectory(atPath: b + "/runs/" + run).sorted() == files, "\(run)")
            #expect(!files.contains("resume"))
            for file in files where file != "timing.jsonl" {
                let x = fm.contents(atPath: a + "/runs/" + run + "/" + file)
                let y = fm.contents(atPath: b + "/runs/" + run + "/" + file)
                #expect(x != nil && x == y, "\(run.prefix(12))/\(file) differs after resuming")
            }
        }
    }

    /// Runs `spec` in `folder` with the test hook that sends `signal` after step `step`; expects the
    /// process to die by it with its state saved in the stage's staging folder.
    static func interrupt(_ spec: String, in folder: String, at step: Int, by signal: String, saved: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["run", spec, "--threads", "1"]
        p.currentDirectoryURL = URL(fileURLWithPath: folder)
        p.environment = ProcessInfo.processInfo.environment.merging(["LETHE_TEST_STOP_AT_STEP": "\(step):\(signal)"]) {
            $1
        }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal, "\(spec) was not ended by SIG\(signal)")
        let expected: Int32 = ["KILL": SIGKILL, "TERM": SIGTERM, "INT": SIGINT][signal]!
        #expect(p.terminationStatus == expected)
        let partial = ((try? FileManager.default.contentsOfDirectory(atPath: folder + "/runs")) ?? [])
            .filter { $0.hasSuffix(".partial") }
        #expect(partial.count == 1)
        let state = folder + "/runs/" + (partial.first ?? "") + "/resume/state.json"
        let text = (try? String(contentsOfFile: state, encoding: .utf8)) ?? ""
        #expect(text.contains("\"step\": \(saved),"), "the saved state is not the one of step \(saved)")
    }

    static func resume(_ spec: String, in folder: String, from step: Int?) throws {
        let r = try CLI.run(["run", spec, "--threads", "1"], in: folder)
        #expect(r.code == 0, "\(r.err)")
        if let step {
            #expect(r.out.contains("resumed from step \(step)/"), "\(r.out)")
        } else {
            #expect(!r.out.contains("resumed from step"), "\(r.out)")
        }
    }

    /// kill -9 after steps that are and are not checkpoint steps, SIGTERM and SIGINT (which save the
    /// state of the step they arrive in), for pretraining (MAE; the VQ autoencoder, whose codebook is
    /// set from data at its first step; MAGE's tokenizer, whose dead-code restarts read 50 steps of
    /// code usage) and unlearning.
    @Test(arguments: [
        ("mae KILL at 5", 5, "KILL", 3),
        ("mae KILL at 6", 6, "KILL", 6),
        ("mae TERM at 7", 7, "TERM", 7),
        ("vq INT at 1", 1, "INT", 1),
        ("mage tokenizer KILL at 31", 31, "KILL", 20),
    ])
    func aStoppedPretrainingResumesBitForBit(_ name: String, _ step: Int, _ signal: String, _ saved: Int) throws {
        let spec: String
        if name.hasPrefix("vq") {
            spec = Self.pretrain(
                "{architecture: vq_autoencoder, vq_autoencoder: {channels: [8, 16], codebook_size: 16, codebook_dim: 8}}"
            )
        } else if name.hasPrefix("mage") {
            spec = Self.mageTokenizer
        } else {
            spec = Self.pretrain()
        }
        let reference = try Self.uninterrupted(["pre.yaml": spec], run: "pre.yaml")
        let folder = try Self.folder(["pre.yaml": spec])
        try Self.interrupt("pre.yaml", in: folder, at: step, by: signal, saved: saved)
        try Self.resume("pre.yaml", in: folder, from: saved)
        try Self.expectIdentical(reference, folder)
    }

    /// An unlearning run stopped twice (SIGTERM, then kill -9 between checkpoints) after its original
    /// was built: each attempt resumes where the last saved state is, and the run ends as an
    /// uninterrupted one does.
    @Test func anUnlearningRunStoppedTwiceResumesBitForBit() throws {
        let specs = ["pre.yaml": Self.pretrain(), "un.yaml": Self.unlearn]
        let reference = try Self.uninterrupted(specs, run: "un.yaml")
        let folder = try Self.folder(specs)
        #expect(try CLI.run(["run", "pre.yaml", "--threads", "1"], in: folder).code == 0)
        try Self.interrupt("un.yaml", in: folder, at: 3, by: "TERM", saved: 3)
        let listing = try CLI.run(["runs"], in: folder)
        #expect(listing.out.contains("resume from step 3"), "\(listing.out)")
        try Self.interrupt("un.yaml", in: folder, at: 5, by: "KILL", saved: 4)
        try Self.resume("un.yaml", in: folder, from: 4)
        try Self.expectIdentical(reference, folder)
    }

    /// A saved state written by another build, or whose tensors do not match their recorded digest, is
    /// not used: the stage starts again from step 0 (saying why) and still ends identically.
    @Test(arguments: ["another build", "torn tensors"])
    func aStateThatCannotBeTrustedIsNotResumed(_ fault: String) throws {
        let spec = Self.pretrain()
        let reference = try Self.uninterrupted(["pre.yaml": spec], run: "pre.yaml")
        let folder = try Self.folder(["pre.yaml": spec])
        try Self.interrupt("pre.yaml", in: folder, at: 7, by: "KILL", saved: 6)
        let partial = try FileManager.default.contentsOfDirectory(atPath: folder + "/runs").first {
            $0.hasSuffix(".partial")
        }!
        let resume = folder + "/runs/" + partial + "/resume/"
        if fault == "another build" {
            let state = try String(contentsOfFile: resume + "state.json", encoding: .utf8)
            try state.replacingOccurrences(of: "\"tool\": \"lethe ", with: "\"tool\": \"lethe 0.0.0-other ")
                .write(toFile: resume + "state.json", atomically: true, encoding: .utf8)
        } else {
            let handle = try #require(FileHandle(forWritingAtPath: resume + "state-6.safetensors"))
            try handle.seekToEnd()
            handle.write(Data([0]))
            try handle.close()
        }
        let r = try CLI.run(["run", "pre.yaml", "--threads", "1"], in: folder)
        #expect(r.code == 0, "\(r.err)")
        #expect(!r.out.contains("resumed from step"))
        #expect(r.out.contains(fault == "another build" ? "starts again from step 0" : "starting again from step 0"))
        try Self.expectIdentical(reference, folder)
    }
}
