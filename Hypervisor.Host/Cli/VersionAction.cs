using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv --version</c>: the version of hv itself (the project's Version, then + and the git
/// commit the build recorded as SourceRevisionId), whichever program hosts the command line
/// (System.CommandLine's own action reads the entry assembly, which in tests is the test host).
/// </summary>
internal sealed class VersionAction(HostConsole console) : SynchronousCommandLineAction
{
    public static string Version { get; } =
        typeof(VersionAction).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(VersionAction).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    public override int Invoke(ParseResult parseResult)
    {
        console.Out.WriteLine(Version);
        return 0;
    }
}
