import Foundation
import Testing
import LetheTensor

/// The `lethe` binary as a user runs it: exit codes, messages, and several processes sharing one
/// runs folder.
enum CLI {
    /// The `lethe` built beside the test bundle (`swift test` builds it: LetheCLITests depends on it).
    static let binary: String = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "lethe"
        ).path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.appendingPathComponent(".build/debug/lethe").path
    }()

    struct Result {
        var code: Int32
        var out: String
        var err: String
        /// The process ended by a signal (`code` is then its number).
        var signaled = false
    }

    /// A started process whose output goes to files (no pipe can fill up and stall it).
    struct Running {
        let process: Process
        let out: String
        let err: String
    }

    static func start(_ arguments: [String], in folder: String, environment: [String: String]? = nil) throws
        -> Running
    {
        let p = Process()
        if let environment { p.environment = environment }
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: folder)
        let stem = NSTemporaryDirectory() + "lethe-cli-out-" + UUID().uuidString
        FileManager.default.createFile(atPath: stem + ".out", contents: nil)
        FileManager.default.createFile(atPath: stem + ".err", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: stem + ".out")
        p.standardError = FileHandle(forWritingAtPath: stem + ".err")
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return Running(process: p, out: stem + ".out", err: stem + ".err")
    }

    static func finish(_ running: Running) -> Result {
        running.process.waitUntilExit()
        let out = (try? String(contentsOfFile: running.out, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: running.err, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: running.out)
        try? FileManager.default.removeItem(atPath: running.err)
        return Result(
            code: running.process.terminationStatus, out: out, err: err,
            signaled: running.process.terminationReason == .uncaughtSignal)
    }

    static func run(_ arguments: [String], in folder: String, environment: [String: String]? = nil) throws -> Result {
        finish(try start(arguments, in: folder, environment: environment))
    }

    static func folder() -> String {
        let p = NSTemporaryDirectory() + "lethe-cli-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    static let model =
        "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"

    /// A tiny pretrain spec and an unlearn spec that depends on it.
    static func writeSpecs(in folder: String, alpha: Double = 0.25, pretrainSteps: Int = 2) throws {
        try """
        version: 1
        kind: pretrain
        data: {dataset: fashion-mnist, per_class_limit: 8}
        model: \(model)
        train: {steps: \(pretrainSteps), batch_size: 8, log_every: 100}
        evaluate: {test_per_class: 1}
        """.write(toFile: folder + "/pre.yaml", atomically: true, encoding: .utf8)
        try """
        version: 1
        kind: unlearn
        data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7]}, retain: {classes: [0, 1]}}
        model: {architecture: mae, pretrain: pre.yaml, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}
        unlearn: {method: ours, alpha: \(alpha)}
        train: {steps: 3, batch_size: 4, forget_batch_size: 4, log_every: 100}
        evaluate: {test_per_class: 2, metrics: [psnr, ssim], grid_samples: 4}
        """.write(toFile: folder + "/un.yaml", atomically: true, encoding: .utf8)
    }

    /// Run directories (64 hex digits) in `folder/runs`.
    static func runDirectories(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder + "/runs")) ?? []).filter { $0.count == 64 }
            .sorted()
    }
}

@Suite(.serialized) struct ConcurrentRunTests {
    /// Four `lethe run` of one spec with a pretrain dependency, at once in one folder: all succeed, each
    /// stage is built exactly once, and every directory is complete and verifies.
    @Test func fourProcessesOfOneSpecBuildEachStageOnce() throws {
        let folder = CLI.folder()
        try CLI.writeSpecs(in: folder)
        let running = try (0..<4).map { _ in try CLI.start(["run", "un.yaml", "--threads", "1"], in: folder) }
        let results = running.map(CLI.finish)
        for r in results { #expect(r.code == 0, "\(r.err)") }
        let output = results.map { $0.out + $0.err }
        let pretrainBuilt = output.map {
            $0.components(separatedBy: "\n").filter { $0.hasPrefix("pretrain ") && $0.contains(": finished,") }.count
        }
        let unlearnBuilt = output.map {
            $0.components(separatedBy: "\n").filter { $0.hasPrefix("unlearn ") && $0.contains(": finished,") }.count
        }
        #expect(pretrainBuilt.reduce(0, +) == 1, "the pretrain stage ran once: \(pretrainBuilt)")
        #expect(unlearnBuilt.reduce(0, +) == 1, "the unlearn stage ran once: \(unlearnBuilt)")
        #expect(output.filter { $0.contains("done before, reusing") }.count >= 3)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder + "/runs")
        #expect(!names.contains { $0.hasSuffix(".partial") })
        #expect(CLI.runDirectories(folder).count == 2)
        let verify = try CLI.run(["runs", "--verify"], in: folder)
        #expect(verify.code == 0, "\(verify.out)\(verify.err)")
        #expect(!verify.out.contains("tampered") && verify.out.components(separatedBy: "finished").count == 3)
    }
}

extension ConcurrentRunTests {
    /// kill -9 in the middle of a stage: the kernel frees the lock, the staging folder is left, never a
    /// finished-looking directory; the next run starts the stage again and finishes.
    @Test func aKilledRunIsRecoveredByTheNextOne() throws {
        let folder = CLI.folder()
        try CLI.writeSpecs(in: folder, pretrainSteps: 300)
        let victim = try CLI.start(["run", "un.yaml", "--threads", "1"], in: folder)
        var partial = false
        for _ in 0..<600 where !partial {
            usleep(50_000)
            partial = ((try? FileManager.default.contentsOfDirectory(atPath: folder + "/runs")) ?? []).contains {
                $0.hasSuffix(".partial")
            }
        }
        #expect(partial, "the pretrain stage started")
        usleep(200_000)
        kill(victim.process.processIdentifier, SIGKILL)
        _ = CLI.finish(victim)
        #expect(CLI.runDirectories(folder).isEmpty, "nothing looks finished")
        let listing = try CLI.run(["runs"], in: folder)
        #expect(listing.out.contains("interrupted"), "\(listing.out)")
        try CLI.writeSpecs(in: folder, pretrainSteps: 300)
        // Same spec, so the same stage: started again from scratch and finished (a shorter budget would
        // be another stage). Cut it short by running only the first steps: the test checks recovery.
        let again = try CLI.run(["run", "un.yaml", "--threads", "1", "--set", "train.steps=1"], in: folder)
        #expect(again.code == 0, "\(again.err)")
        #expect(again.out.contains("pretrain ") && again.out.contains(": finished,"))
        let names = try FileManager.default.contentsOfDirectory(atPath: folder + "/runs")
        #expect(!names.contains { $0.hasSuffix(".partial") })
    }
}

@Suite(.serialized) struct ExitCodeTests {
    static let shared: String = {
        let folder = CLI.folder()
        try! CLI.writeSpecs(in: folder)
        let r = try! CLI.run(["run", "un.yaml", "--threads", "1"], in: folder)
        precondition(r.code == 0, r.err)
        return folder
    }()

    @Test func validateAnswersYesNoOrError() throws {
        let folder = Self.shared
        #expect(try CLI.run(["validate", "un.yaml", "pre.yaml"], in: folder).code == 0)
        try "version: 1\nkind: unlern\n".write(toFile: folder + "/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try CLI.run(["validate", "bad.yaml"], in: folder)
        #expect(bad.code == 1)
        #expect(bad.err.contains("bad.yaml:2:7: /kind: must be one of"))
        let missing = try CLI.run(["validate", "absent.yaml"], in: folder)
        #expect(missing.code == 2)
        #expect(
            missing.err.contains("absent.yaml:1:1: /: cannot read the spec: no such file or directory"),
            "\(missing.err)")
        let device = try CLI.run(["validate", "/dev/zero"], in: folder)
        #expect(device.code == 2 && device.err.contains("is a character device, not a regular file"), "\(device.err)")
        let directory = try CLI.run(["validate", "runs"], in: folder)
        #expect(directory.code == 2 && directory.err.contains("is a directory, expected a file"), "\(directory.err)")
    }

    @Test func usageErrorsExitTwoWithAMessage() throws {
        let folder = Self.shared
        for (args, message) in [
            (["run", "un.yaml", "--threads", "0"], "--threads must be between 1 and 512; found 0"),
            (["run", "un.yaml", "--threads", "-1"], "--threads must be between 1 and 512; found -1"),
            (["run", "un.yaml", "--threads", "100000"], "--threads must be between 1 and 512; found 100000"),
            (["reproduce", "abcd", "--tolerance", "nan"], "--tolerance must be a finite number >= 0; found nan"),
            (["diff", "a", "b", "--layers", "-3"], "--layers must be at least 0; found -3"),
            (["run", "un.yaml", "--no-such-flag"], "Unknown option '--no-such-flag'"),
            (["table", "un.yaml", "--seeds", "0,x"], "--seeds takes comma-separated non-negative integers"),
            (["table", "un.yaml", "--metrics", "fid,bogus"], "unknown metric 'bogus'"),
        ] {
            let r = try CLI.run(args, in: folder)
            #expect(r.code == 2, "\(args)")
            #expect(r.err.contains(message), "\(args): \(r.err)")
        }
        #expect(try CLI.run(["--help"], in: folder).code == 0)
    }

    @Test func unknownAndAmbiguousRunsAreErrorsInEveryCommand() throws {
        let folder = Self.shared
        // Two runs whose hashes share no prefix guarantee nothing; make an ambiguous prefix by copying
        // a run under a second name sharing its first four digits.
        let dirs = CLI.runDirectories(folder)
        let twin = String(dirs[0].prefix(4)) + String(repeating: "0", count: 60)
        if !FileManager.default.fileExists(atPath: folder + "/runs/" + twin) {
            try FileManager.default.copyItem(atPath: folder + "/runs/" + dirs[0], toPath: folder + "/runs/" + twin)
        }
        defer { try? FileManager.default.removeItem(atPath: folder + "/runs/" + twin) }
        let prefix = String(dirs[0].prefix(4))
        for args in [["evaluate", prefix], ["diff", prefix, prefix], ["reproduce", prefix]] {
            let r = try CLI.run(args, in: folder)
            #expect(r.code == 2, "\(args)")
            #expect(r.err.contains("is ambiguous"), "\(args): \(r.err)")
        }
        for args in [["evaluate", "ffffffff"], ["diff", "ffffffff", "eeeeeeee"], ["reproduce", "ffffffff"]] {
            let r = try CLI.run(args, in: folder)
            #expect(r.code == 2 && r.err.contains("no finished run"), "\(args): \(r.err)")
        }
    }

    @Test func tamperedRunsAreANoEverywhere() throws {
        let folder = CLI.folder()
        try CLI.writeSpecs(in: folder)
        #expect(try CLI.run(["run", "un.yaml", "--threads", "1"], in: folder).code == 0)
        let unlearn = try #require(
            CLI.runDirectories(folder).first {
                FileManager.default.fileExists(atPath: folder + "/runs/" + $0 + "/report.html")
            })
        let eval = folder + "/runs/" + unlearn + "/eval.json"
        let text = try String(contentsOfFile: eval, encoding: .utf8)
        try text.replacingOccurrences(of: "\"psnr\": ", with: "\"psnr\": 9").write(
            toFile: eval, atomically: true, encoding: .utf8)
        let evaluate = try CLI.run(["evaluate", String(unlearn.prefix(8))], in: folder)
        #expect(
            evaluate.code == 1 && evaluate.err.contains("eval.json: changed since the run finished"), "\(evaluate.err)")
        #expect(!evaluate.out.contains("psnr"), "a hand-edited eval.json is not printed")
        let verify = try CLI.run(["runs", "--verify"], in: folder)
        #expect(verify.code == 1 && verify.out.contains("tampered"), "\(verify.out)")
        #expect(try CLI.run(["runs"], in: folder).code == 0, "listing without --verify answers no question")
        #expect(try CLI.run(["reproduce", String(unlearn.prefix(8))], in: folder).code == 1)
        #expect(try CLI.run(["diff", String(unlearn.prefix(8)), String(unlearn.prefix(8))], in: folder).code == 1)
        // The run would reuse it: verification fails, nothing is overwritten.
        let rerun = try CLI.run(["run", "un.yaml", "--threads", "1"], in: folder)
        #expect(rerun.code == 1 && rerun.err.contains("does not verify"), "\(rerun.err)")
        #expect(try String(contentsOfFile: eval, encoding: .utf8) != text)
    }

    /// `LETHE_ISA` picks the instruction set of the kernels for a process, `LETHE_SMALL_PRODUCTS` the
    /// library of its small products: a bad value stops the tool before any work (exit 2, what it
    /// takes); a run records both in provenance.json, and a reproduction with others names them among
    /// the causes of a difference.
    @Test func theKernelInstructionSetIsChosenRecordedAndCompared() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["LETHE_ISA"] = "sse9"
        let folder = CLI.folder()
        try CLI.writeSpecs(in: folder)
        let bad = try CLI.run(["run", "un.yaml"], in: folder, environment: environment)
        #expect(bad.code == 2 && bad.err.contains("LETHE_ISA=sse9: no such instruction set (portable, avx2, avx512)"))
        environment["LETHE_ISA"] = nil
        environment["LETHE_SMALL_PRODUCTS"] = "mkl"
        let badLibrary = try CLI.run(["run", "un.yaml"], in: folder, environment: environment)
        #expect(
            badLibrary.code == 2
                && badLibrary.err.contains("LETHE_SMALL_PRODUCTS=mkl: no such library (openblas, libxsmm)"),
            "\(badLibrary.err)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/runs"), "nothing was written")
        // The library the default would not pick.
        let other = SmallProducts.preferred(forBLASCore: Numerics.blasCore) == .openblas ? "libxsmm" : "openblas"
        environment["LETHE_SMALL_PRODUCTS"] = other
        environment["LETHE_ISA"] = "portable"
        let run = try CLI.run(["run", "un.yaml", "--threads", "1"], in: folder, environment: environment)
        #expect(run.code == 0, "\(run.err)")
        let unlearn = try #require(
            CLI.runDirectories(folder).first {
                FileManager.default.fileExists(atPath: folder + "/runs/" + $0 + "/report.html")
            })
        let provenance = try String(contentsOfFile: folder + "/runs/" + unlearn + "/provenance.json", encoding: .utf8)
        #expect(provenance.contains("\"kernels\": \"portable\""), "\(provenance)")
        #expect(provenance.contains("\"small_products\": \"\(other)\""), "\(provenance)")
        #if arch(x86_64)
            // Every x86-64 CPU this runs on has AVX2 at least, the default set for a process.
            environment["LETHE_ISA"] = nil
            environment["LETHE_SMALL_PRODUCTS"] = nil
            let again = try CLI.run(
                ["reproduce", String(unlearn.prefix(8)), "--threads", "1"], in: folder, environment: environment)
            #expect(again.out.contains("Lethe's kernel instruction set: \"portable\" then, \"avx"), "\(again.out)")
            #expect(again.out.contains("small products' library: \"\(other)\" then, \""), "\(again.out)")
        #endif
    }

    /// Pointing --scratch at the runs folder itself must not delete a single run.
    @Test func reproduceIntoTheRunsFolderDeletesNothing() throws {
        let folder = Self.shared
        let before = CLI.runDirectories(folder)
        let unlearn = try #require(
            before.first { FileManager.default.fileExists(atPath: folder + "/runs/" + $0 + "/report.html") })
        let r = try CLI.run(
            ["reproduce", String(unlearn.prefix(8)), "--scratch", "runs", "--threads", "1"], in: folder)
        #expect(r.code == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("REPRODUCED"))
        #expect(CLI.runDirectories(folder) == before)
        for dir in before {
            #expect(FileManager.default.fileExists(atPath: folder + "/runs/" + dir + "/manifest.json"))
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder + "/runs").filter {
            $0.hasPrefix("lethe-reproduce-")
        }
        #expect(leftovers.isEmpty, "the scratch folder Lethe made is removed after success")
    }
}

/// What the commands print, against golden text (`Tests/LetheCLITests/Golden/`). Numbers that depend
/// on the machine's floating-point kernels are masked (`#`), as are dates; everything else (hashes of
/// the tiny specs, row and column names, located errors) must match to the character.
@Suite(.serialized) struct GoldenOutputTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
        .path

    static func masked(_ text: String) -> String {
        var out = text.replacing(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}/, with: "DATE")
        out = out.replacing(/-?\d+\.\d+(e[-+]?\d+)?/, with: "#")
        return out
    }

    @Test func validateReportsEveryProblemInSourceOrder() throws {
        let r = try CLI.run(["validate", "bad.yaml"], in: Self.golden)
        #expect(r.code == 1)
        #expect(r.err == (try String(contentsOfFile: Self.golden + "/validate-bad.txt", encoding: .utf8)))
    }

    @Test func runsDiffAndTableOutput() throws {
        let folder = CLI.folder()
        try CLI.writeSpecs(in: folder, alpha: 0.25)
        #expect(try CLI.run(["run", "un.yaml", "--threads", "1"], in: folder).code == 0)
        try CLI.writeSpecs(in: folder, alpha: 0.5)
        try FileManager.default.moveItem(atPath: folder + "/un.yaml", toPath: folder + "/un-half.yaml")
        try CLI.writeSpecs(in: folder, alpha: 0.25)
        #expect(try CLI.run(["run", "un-half.yaml", "--threads", "1"], in: folder).code == 0)

        let runs = try CLI.run(["runs", "--format", "md"], in: folder)
        let plan = try CLI.run(["plan", "un.yaml", "--json"], in: folder)
        let a =
            try #require(try JSONSerialization.jsonObject(with: Data(plan.out.utf8)) as? [String: Any])["config_hash"]
            as? String
        let planB = try CLI.run(["plan", "un-half.yaml", "--json"], in: folder)
        let b =
            try #require(try JSONSerialization.jsonObject(with: Data(planB.out.utf8)) as? [String: Any])["config_hash"]
            as? String
        let diff = try CLI.run(
            ["diff", String(a!.prefix(12)), String(b!.prefix(12)), "--md", "--png", folder + "/d.png"], in: folder)
        #expect(diff.code == 1, "the runs differ")
        let table = try CLI.run(
            ["table", "un.yaml", "un-half.yaml", "--no-run", "--format", "md", "--metrics", "psnr,ssim"], in: folder)
        #expect(table.code == 0, "\(table.err)")

        // The diff's headings and spec table; which metric is better, the order of layers by size and the
        // count of changed grid cells follow the machine's last bits, so they are left out.
        let diffOutline = diff.out.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0.hasPrefix("#") || $0.hasPrefix("| /") || $0.hasPrefix("| path") }
            .map { $0.hasPrefix("### images") ? "### images" : String($0) }.joined(separator: "\n")
        for (name, output) in [("runs.md", runs.out), ("diff.md", diffOutline), ("table.md", table.out)] {
            let actual = Self.masked(output).replacingOccurrences(of: folder, with: "FOLDER")
            let file = Self.golden + "/" + name
            if ProcessInfo.processInfo.environment["LETHE_UPDATE_GOLDEN"] != nil {
                try actual.write(toFile: file, atomically: true, encoding: .utf8)
            }
            #expect(
                actual == (try String(contentsOfFile: file, encoding: .utf8)),
                "\(name) differs from its golden text; LETHE_UPDATE_GOLDEN=1 rewrites it after a deliberate change")
        }
    }
}
