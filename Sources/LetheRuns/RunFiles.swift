import Foundation
import LetheJSON
import LetheSpec
import LetheTensor

/// The files every run directory holds besides its results.
public enum RunFiles {
    public static func writeCommon(_ plan: Plan, into dir: RunDirectory, threads: Int, mode: Numerics.Mode)
        throws(RunDirectory
        .Failure)
    {
        if let spec = FileManager.default.contents(atPath: plan.specPath) {
            try dir.write("spec.yaml", bytes: [UInt8](spec))
        }
        // Where the run was written is not part of it, and the pretrain stage is named by its config
        // hash (as in the identity): two runs of one spec have equal files wherever they were planned.
        var resolved = plan.resolved.removing("/output")
        if let pretrain = plan.dependencies.first {
            resolved = resolved.setting("/model/pretrain", .string("config:" + pretrain.configHash))
        }
        try dir.write("resolved.json", json: resolved)
        try dir.write(
            "plan.json",
            json: .object(
                JSONObject([
                    ("config_hash", .string(plan.configHash)), ("identity", plan.identity),
                    (
                        "inputs",
                        .array(
                            plan.inputs.map {
                                .object(
                                    JSONObject([
                                        ("role", .string($0.role)), ("path", .string($0.path)),
                                        ("sha256", .string($0.sha256)),
                                    ]))
                            })
                    ),
                ])))
        try dir.write("config_hash", text: plan.configHash + "\n")
        try dir.write("provenance.json", json: provenance(threads: threads, mode: mode))
    }

    /// What produced the run (no clock readings: timings live in timing.jsonl, so reruns compare).
    public static func provenance(threads: Int, mode: Numerics.Mode) -> JSONValue {
        var git = JSONObject()
        // The commit of the checkout the running binary was built in (found from the executable's
        // own path), not of whatever folder `lethe` happens to be run from.
        if let source = toolSourceFolder, let commit = shell("git", "-C", source, "rev-parse", "HEAD") {
            git["commit"] = .string(commit)
            git["dirty"] = .bool(
                !(shell("git", "-C", source, "status", "--porcelain", "--untracked-files=no") ?? "").isEmpty)
        }
        let cpu = CPUInfo.field("model name") ?? "unknown"
        return .object(
            JSONObject([
                ("tool", .string("lethe " + LetheVersion.current)), ("git", .object(git)),
                ("threads", .integer(threads)), ("numerics_mode", .string(mode.rawValue)),
                ("blas", .string("OpenBLAS \(Numerics.blasCore)")), ("kernels", .string(Numerics.isa.rawValue)),
                ("small_products", .string(Numerics.smallProducts.rawValue)),
                ("cpu", .string(cpu)),
                ("os", .string(ProcessInfo.processInfo.operatingSystemVersionString)),
            ]))
    }

    /// The folder of the running executable (`/proc/self/exe`), where `git -C` finds the checkout a
    /// `swift build` placed it in; nil when it cannot be read.
    static var toolSourceFolder: String? {
        executable.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
    }

    /// The running executable's path (`/proc/self/exe`); nil when it cannot be read.
    public static var executable: String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    static func shell(_ arguments: String...) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
